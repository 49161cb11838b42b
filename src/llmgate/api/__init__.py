"""llmgate's own REST API under ``/api``: one flask-restx ``Namespace`` per module, gathered here.

Swagger UI is served at ``/docs`` and the Swagger 2.0 spec at ``/swagger.json``.
"""
from __future__ import annotations

import copy
from functools import cached_property

from flask import Blueprint, Flask
from flask_restx import Api

from ..errors import init_api as init_api_errors

AUTHORIZATIONS = {
    "bearer": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Bearer <access token>` from /api/auth/login, or `Bearer sk-lg-…` (an API key)",
    }
}


class LLMGateApi(Api):
    """restx's ``Api``, with the spec saying that optional properties may be ``null``.

    That holds both ways: ``marshal`` writes ``null`` for an optional field the object lacks
    (a key that never expires, a user with no rpm limit), and ``payload.json_body`` accepts
    ``null`` for an optional input field (meaning "unset"). Swagger 2.0 has no ``nullable``;
    its conventional extension ``x-nullable`` is what schemathesis and client generators read.
    """

    @cached_property
    def __schema__(self):
        # A copy: restx builds the definitions from the fields' own (cached, shared) schemas.
        schema = copy.deepcopy(super().__schema__)
        for definition in schema.get("definitions", {}).values():
            required = set(definition.get("required", []))
            for name, prop in definition.get("properties", {}).items():
                if name not in required:
                    prop["x-nullable"] = True
        return schema


def build_api(blueprint: Blueprint) -> Api:
    api = LLMGateApi(
        blueprint,
        title="llmgate API",
        version="1",
        description="Users, API keys, usage reports and tabular batches. The OpenAI- and "
        "Anthropic-compatible endpoints live under /v1 and are documented in the README.",
        doc="/docs",
        authorizations=AUTHORIZATIONS,
        security="bearer",
        validate=True,
    )

    init_api_errors(api)

    from . import namespaces

    for namespace in namespaces.all_namespaces():
        api.add_namespace(namespace)
    return api


def init_app(app: Flask) -> None:
    # The blueprint sits at the root so that /docs and /swagger.json are where users look;
    # every namespace path starts with /api.
    blueprint = Blueprint("api", __name__)
    app.extensions["llmgate.api"] = build_api(blueprint)
    app.register_blueprint(blueprint)
