"""``/api/auth`` (login, refresh, logout) and ``/api/me`` (who am I, change my password)."""
from __future__ import annotations

from flask import request
from flask_jwt_extended import get_jwt, jwt_required, verify_jwt_in_request
from flask_restx import Namespace, Resource, fields

from ..auth import tokens, users
from ..auth.decorators import current_principal, fresh_login_required, login_required
from ..auth.passwords import MAX_PASSWORD_LENGTH
from .payload import json_body
from .schemas import document_errors, error_model, limit_output_fields

ns = Namespace("auth", path="/api/auth", description="Log in with email and password; JWT sessions")
me_ns = Namespace("me", path="/api/me", description="The signed-in user")

_error = error_model(ns)
_me_error = error_model(me_ns)

login_request = ns.model("LoginRequest", {
    "email": fields.String(required=True, max_length=254, example="admin@localhost"),
    "password": fields.String(required=True, max_length=MAX_PASSWORD_LENGTH),
}, strict=True)
token_pair = ns.model("TokenPair", {
    "access_token": fields.String(required=True, description="Fresh access token (minutes)"),
    "refresh_token": fields.String(required=True, description="Send as Bearer to /api/auth/refresh"),
})
access_token = ns.model("AccessToken", {"access_token": fields.String(required=True, description="Not fresh")})
logout_result = ns.model("LogoutResult", {"revoked": fields.Boolean(required=True)})

me_model = me_ns.model("Me", {
    "id": fields.Integer(attribute="user_id"),
    "email": fields.String,
    "role": fields.String,
    "key_id": fields.Integer(description="The API key used, when authenticated with one"),
    "key_prefix": fields.String,
    "allowed_models": fields.List(fields.String, description="null: every model"),
    "user_limits": fields.Nested(me_ns.model("MeLimits", {
        k: v for k, v in limit_output_fields().items() if k in ("rpm", "tpm", "max_concurrency")})),
})
password_request = me_ns.model("PasswordChange", {
    "password": fields.String(required=True, min_length=8, max_length=MAX_PASSWORD_LENGTH),
}, strict=True)


@ns.route("/login")
class Login(Resource):
    @ns.doc(security=[])
    @ns.expect(login_request, validate=False)
    @ns.marshal_with(token_pair)
    @document_errors(ns, _error, 400, 401, 415, 422, 429)
    def post(self):
        """Exchange email and password for a fresh access token and a refresh token."""
        body = json_body(login_request)
        user = users.authenticate_password(email=body["email"], password=body["password"],
                                           client_address=request.remote_addr)
        return tokens.issue_tokens(user=user)


@ns.route("/refresh")
class Refresh(Resource):
    @ns.doc(description="Send the refresh token as `Authorization: Bearer <refresh token>`.")
    @ns.marshal_with(access_token)
    @document_errors(ns, _error, 401)
    @jwt_required(refresh=True)
    def post(self):
        """A new (not fresh) access token."""
        claims = get_jwt()
        return {"access_token": tokens.refresh_access_token(user_id=int(claims["sub"]), issued_at=claims.get("iat"))}


@ns.route("/logout")
class Logout(Resource):
    @ns.doc(description="Revokes the token presented (access or refresh), in every process.")
    @ns.marshal_with(logout_result)
    @document_errors(ns, _error, 401)
    def post(self):
        """Revoke the presented token."""
        verify_jwt_in_request(verify_type=False)
        tokens.revoke(claims=get_jwt())
        return {"revoked": True}


@me_ns.route("")
class Me(Resource):
    @me_ns.marshal_with(me_model)
    @document_errors(me_ns, _me_error, 401)
    @login_required
    def get(self):
        """Who is calling: user, role, and the API key's allow-list when one was used."""
        principal = current_principal()
        return {
            "user_id": principal.user_id, "email": principal.email, "role": principal.role,
            "key_id": principal.key_id, "key_prefix": principal.key_prefix,
            "allowed_models": None if principal.allowed_models is None else sorted(principal.allowed_models),
            "user_limits": principal.user_limits,
        }


@me_ns.route("/password")
class MyPassword(Resource):
    @me_ns.expect(password_request, validate=False)
    @me_ns.response(204, "Changed; tokens issued before now stop working")
    @document_errors(me_ns, _me_error, 400, 401, 415, 422)
    @fresh_login_required
    def post(self):
        """Change my password (needs a fresh token). Log in again afterwards."""
        body = json_body(password_request)
        users.change_password(user=users.get_user(user_id=current_principal().user_id), password=body["password"])
        return "", 204
