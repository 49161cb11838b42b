"""``/api/keys``: create (shown once), list, read, edit and revoke API keys.

Members see and manage only their own keys (others' are 404); admins see everyone's.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_restx import Namespace, Resource, fields

from ..auth import keys, users
from ..auth.decorators import current_principal, fresh_login_required, login_required
from ..errors import Forbidden, ValidationError
from .payload import json_body, query_flag, query_int
from .schemas import document_errors, error_model, limit_input_fields, limit_output_fields

ns = Namespace("keys", path="/api/keys", description="API keys for /v1")
_error = error_model(ns)

key_model = ns.model("ApiKey", {
    "id": fields.Integer(required=True),
    "name": fields.String,
    "prefix": fields.String(description="The key's first characters, to recognise it"),
    "user_id": fields.Integer,
    "owner": fields.String(attribute="user.email", description="The owner's email"),
    "models": fields.List(fields.String, attribute="allowed_models", description="null: every model"),
    "created_at": fields.DateTime(dt_format="iso8601"),
    "last_used_at": fields.DateTime(dt_format="iso8601"),
    "expires_at": fields.DateTime(dt_format="iso8601"),
    "revoked_at": fields.DateTime(dt_format="iso8601"),
    **limit_output_fields(),
})
created_key_model = ns.inherit("CreatedApiKey", key_model, {
    "key": fields.String(required=True, description="The key itself. Shown this once; store it now."),
})
_common_inputs = {
    "name": fields.String(max_length=keys.MAX_NAME_LENGTH),
    "models": fields.List(fields.String(max_length=keys.MAX_MODEL_NAME_LENGTH), max_items=keys.MAX_MODELS,
                          description="Model names this key may use; null or absent: every model"),
    "expires_in": fields.String(max_length=16, example="30d", description="Duration: 30d, 12h, 90m, 2w, 3600s"),
    "expires_at": fields.DateTime(dt_format="iso8601", description="Absolute expiry (ISO 8601)"),
    **limit_input_fields(),
}
key_create = ns.model("ApiKeyCreate", {
    **_common_inputs,
    "user_id": fields.Integer(min=1, description="Admins only: create the key for this user"),
}, strict=True)
key_patch = ns.model("ApiKeyPatch", _common_inputs, strict=True)


def _expiry_fields(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("expires_at") is not None:
        try:
            body["expires_at"] = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("Invalid expires_at.", details={"expires_at": "must be an ISO 8601 date-time"}) from None
    return body


@ns.route("")
class KeyList(Resource):
    @ns.doc(params={"all": "Admins: every user's keys", "user_id": "Admins: this user's keys"})
    @ns.marshal_list_with(key_model)
    @document_errors(ns, _error, 401, 403, 422)
    @login_required
    def get(self):
        """My keys (admins: ``?all=true`` or ``?user_id=``)."""
        principal = current_principal()
        everyone, user_id = query_flag("all"), query_int("user_id")
        if (everyone or (user_id is not None and user_id != principal.user_id)) and not principal.is_admin:
            raise Forbidden("Only admins can list other users' keys.")
        return keys.list_keys(user_id=None if everyone else (user_id or principal.user_id))

    @ns.expect(key_create, validate=False)
    @ns.marshal_with(created_key_model, code=201)
    @document_errors(ns, _error, 400, 401, 403, 404, 415, 422)
    @fresh_login_required
    def post(self):
        """Create a key (needs a fresh token). The response holds the key, shown only this once."""
        principal = current_principal()
        body = _expiry_fields(json_body(key_create, optional=True))
        owner_id = body.pop("user_id", None) or principal.user_id
        if owner_id != principal.user_id and not principal.is_admin:
            raise Forbidden("Only admins can create keys for other users.")
        plaintext, key = keys.create_key(user=users.get_user(user_id=owner_id), **body)
        key.key = plaintext  # for marshalling only; not a column, never stored
        return key, 201


@ns.route("/<int:key_id>")
@ns.param("key_id", "The key's id")
class KeyItem(Resource):
    @ns.marshal_with(key_model)
    @document_errors(ns, _error, 401, 404)
    @login_required
    def get(self, key_id: int):
        """One key (yours, or any for admins)."""
        keys.flush_last_used()
        return keys.get_key(key_id=key_id, viewer=current_principal())

    @ns.expect(key_patch, validate=False)
    @ns.marshal_with(key_model)
    @document_errors(ns, _error, 400, 401, 404, 415, 422)
    @login_required
    def patch(self, key_id: int):
        """Rename, change the model allow-list, expiry or limits; effective within a second."""
        body = _expiry_fields(json_body(key_patch))
        return keys.update_key(key=keys.get_key(key_id=key_id, viewer=current_principal()), changes=body)

    @ns.marshal_with(key_model)
    @document_errors(ns, _error, 401, 404)
    @login_required
    def delete(self, key_id: int):
        """Revoke the key: refused everywhere within a second. It stays listed, marked revoked."""
        return keys.revoke_key(key=keys.get_key(key_id=key_id, viewer=current_principal()))
