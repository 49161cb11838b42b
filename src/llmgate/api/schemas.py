"""restx field sets shared by the auth namespaces (users, keys): limits, budgets, errors."""
from __future__ import annotations

from flask_restx import Namespace, fields

from ..models.limits import BUDGET_PERIODS

ERROR_RESPONSES = {
    400: "Malformed body (not a JSON object, invalid JSON)",
    401: "Missing, invalid, expired or revoked credentials",
    403: "Authenticated but not allowed (admin only, or not yours)",
    404: "No such resource (or not yours)",
    409: "Conflicts with existing data",
    415: "Body is not JSON",
    422: "A field is invalid; `errors` maps each field to why",
    429: "Too many attempts; see Retry-After",
}


def limit_input_fields() -> dict[str, fields.Raw]:
    return {
        "rpm": fields.Integer(min=1, description="Requests per minute (null: no limit)"),
        "tpm": fields.Integer(min=1, description="Tokens per minute (null: no limit)"),
        "max_concurrency": fields.Integer(min=1, description="Requests in flight at once (null: no limit)"),
        "budget_usd": fields.Float(min=0, description="Spend limit in USD per budget_period (null: none)"),
        "budget_period": fields.String(enum=list(BUDGET_PERIODS), description="Budget window (UTC); default month"),
        "budget_soft_usd": fields.Float(min=0, description="Warn (not refuse) above this spend"),
    }


def limit_output_fields() -> dict[str, fields.Raw]:
    return {
        "rpm": fields.Integer, "tpm": fields.Integer, "max_concurrency": fields.Integer,
        "budget_usd": fields.Float, "budget_period": fields.String, "budget_soft_usd": fields.Float,
    }


def error_model(ns: Namespace):
    return ns.model(f"{ns.name.capitalize()}Error", {
        "message": fields.String(required=True),
        "code": fields.String(required=True),
        "errors": fields.Raw(description="field → what is wrong with it"),
    })


def document_errors(ns: Namespace, model, *statuses: int):
    """``@ns.response(...)`` for each status, with llmgate's error body."""
    def decorate(fn):
        for status in statuses:
            fn = ns.response(status, ERROR_RESPONSES[status], model)(fn)
        return fn
    return decorate
