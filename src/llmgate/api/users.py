"""``/api/users``: admin-only user management (list, create, read, edit, delete)."""
from __future__ import annotations

from flask_restx import Namespace, Resource, fields

from ..auth import users
from ..auth.decorators import admin_required, require_fresh_token
from ..auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ..models.user import ROLES
from .payload import json_body
from .schemas import document_errors, error_model, limit_input_fields, limit_output_fields

ns = Namespace("users", path="/api/users", description="User management (admins only)")
_error = error_model(ns)

user_model = ns.model("User", {
    "id": fields.Integer(required=True),
    "email": fields.String(required=True),
    "role": fields.String(required=True, enum=list(ROLES)),
    "active": fields.Boolean(required=True),
    "created_at": fields.DateTime(dt_format="iso8601"),
    "password_changed_at": fields.DateTime(dt_format="iso8601"),
    **limit_output_fields(),
})
_password = fields.String(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
user_create = ns.model("UserCreate", {
    "email": fields.String(required=True, max_length=254),
    "password": fields.String(required=True, min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
    "role": fields.String(enum=list(ROLES), default="member"),
    "active": fields.Boolean(default=True),
    **limit_input_fields(),
}, strict=True)
user_patch = ns.model("UserPatch", {
    "email": fields.String(max_length=254),
    "password": fields.String(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH,
                              description="Needs a fresh token"),
    "role": fields.String(enum=list(ROLES)),
    "active": fields.Boolean(description="false deactivates: the user's tokens and keys stop working"),
    **limit_input_fields(),
}, strict=True)


@ns.route("")
class UserList(Resource):
    @ns.marshal_list_with(user_model)
    @document_errors(ns, _error, 401, 403)
    @admin_required
    def get(self):
        """Every user."""
        return users.list_users()

    @ns.expect(user_create, validate=False)
    @ns.marshal_with(user_model, code=201)
    @document_errors(ns, _error, 400, 401, 403, 409, 415, 422)
    @admin_required
    def post(self):
        """Create a user."""
        body = json_body(user_create)
        body.setdefault("role", "member")
        if body.get("role") is None:
            body["role"] = "member"
        if body.get("active") is None:
            body["active"] = True
        return users.create_user(**body), 201


@ns.route("/<int:user_id>")
@ns.param("user_id", "The user's id")
class UserItem(Resource):
    @ns.marshal_with(user_model)
    @document_errors(ns, _error, 401, 403, 404)
    @admin_required
    def get(self, user_id: int):
        """One user."""
        return users.get_user(user_id=user_id)

    @ns.expect(user_patch, validate=False)
    @ns.marshal_with(user_model)
    @document_errors(ns, _error, 400, 401, 403, 404, 409, 415, 422)
    @admin_required
    def patch(self, user_id: int):
        """Change role, active flag, password (fresh token), email, limits or budget."""
        body = json_body(user_patch)
        if "password" in body:
            require_fresh_token()
        return users.update_user(user=users.get_user(user_id=user_id), changes=body)

    @ns.response(204, "Deleted, with the user's API keys")
    @document_errors(ns, _error, 401, 403, 404, 409)
    @admin_required
    def delete(self, user_id: int):
        """Delete a user and their keys (PATCH active=false deactivates instead)."""
        users.delete_user(user=users.get_user(user_id=user_id))
        return "", 204
