"""``/api/usage``: usage and cost reports (JSON, CSV, Parquet) and the caller's limits and budgets.

Members see only their own usage; admins see everyone's and may filter by user or key.
"""
from __future__ import annotations

from flask import Response, request
from flask_restx import Namespace, Resource, fields

from ..accounting import budgets, reports
from ..auth.decorators import current_principal, login_required
from ..errors import Forbidden, ValidationError
from .schemas import document_errors, error_model

ns = Namespace("usage", path="/api/usage", description="Usage and cost reports, limits and budgets")
_error = error_model(ns)

_metrics = {name: fields.Float(required=True) if name == "cost_usd" else fields.Integer(required=True)
            for name in reports.METRICS}
usage_row = ns.model("UsageRow", {
    "day": fields.String(description="With group_by=day: the local day"),
    "hour": fields.String(description="With group_by=hour: the local hour"),
    "model": fields.String, "provider": fields.String,
    "key": fields.Integer(description="With group_by=key: the key's id (null: no key, e.g. a login token)"),
    "key_prefix": fields.String, "user": fields.Integer, "user_email": fields.String,
    **_metrics,
})
usage_report = ns.model("UsageReport", {
    "start": fields.String(required=True), "end": fields.String(required=True), "tz": fields.String(required=True),
    "group_by": fields.List(fields.String, required=True),
    "filters": fields.Nested(ns.model("UsageFilters", {
        "user": fields.Integer, "key": fields.Integer, "model": fields.String}), required=True),
    "rows": fields.List(fields.Nested(usage_row), required=True),
    "totals": fields.Nested(ns.model("UsageTotals", _metrics), required=True),
})
_limits = ns.model("UsageLimitValues", {"rpm": fields.Integer, "tpm": fields.Integer, "max_concurrency": fields.Integer})
_budget = ns.model("UsageBudget", {
    "limit_usd": fields.Float(required=True), "period": fields.String(required=True), "soft_limit_usd": fields.Float,
    "spent_usd": fields.Float(required=True), "remaining_usd": fields.Float(required=True),
    "resets_at": fields.String,
})
_owner = {
    "id": fields.Integer(required=True),
    "limits": fields.Nested(_limits, required=True),
    "spent_usd": fields.Raw(required=True, description="period (day, week, month, total) → USD"),
    "budget": fields.Nested(_budget, description="null: no budget"),
}
usage_limits = ns.model("UsageLimits", {
    "user": fields.Nested(ns.model("UsageLimitsUser", _owner), required=True),
    "key": fields.Nested(ns.model("UsageLimitsKey", {**_owner, "prefix": fields.String}),
                         description="null unless authenticated with an API key"),
})

_REPORT_PARAMS = {
    "start": "ISO date (whole local day) or date-time; default: 7 days before end",
    "end": "ISO date (included) or date-time (excluded); default: now",
    "tz": "IANA time zone for day/hour buckets and naive dates, e.g. Europe/Paris (default UTC)",
    "group_by": f"Comma-separated: {', '.join(reports.GROUPS)}",
    "format": f"One of {', '.join(reports.FORMATS)} (default json)",
    "user_id": "Admins: only this user's usage",
    "key_id": "Only this key's usage",
    "model": "Only this model",
}


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"Invalid {name}.", details={name: "must be an integer"}) from None


@ns.route("")
class UsageReport(Resource):
    @ns.doc(params=_REPORT_PARAMS)
    @ns.produces(["application/json", "text/csv", "application/vnd.apache.parquet"])
    @ns.response(200, "The report: JSON, or with format=csv|parquet a file", usage_report)
    @document_errors(ns, _error, 401, 403, 422)
    @login_required
    def get(self):
        """Usage totals between two dates, grouped by day/hour/model/key/user/provider, with a totals row."""
        principal = current_principal()
        fmt = (request.args.get("format") or "json").lower()
        if fmt not in reports.FORMATS:
            raise ValidationError("Unknown format.", details={"format": f"choose from {', '.join(reports.FORMATS)}"})
        user_id = _int_arg("user_id")
        if not principal.is_admin:
            if user_id is not None and user_id != principal.user_id:
                raise Forbidden("Members can only read their own usage.")
            user_id = principal.user_id
        query = reports.parse_query(
            start=request.args.get("start"), end=request.args.get("end"), tz=request.args.get("tz"),
            group_by=request.args.get("group_by") or request.args.get("by"), user_id=user_id,
            key_id=_int_arg("key_id"), model=request.args.get("model") or None)
        report = reports.build_report(query)
        if fmt == "csv":
            return Response(reports.to_csv(report), mimetype="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="usage.csv"'})
        if fmt == "parquet":
            return Response(reports.to_parquet(report), mimetype="application/vnd.apache.parquet",
                            headers={"Content-Disposition": 'attachment; filename="usage.parquet"'})
        return reports.to_json(report)


@ns.route("/limits")
class UsageLimits(Resource):
    @ns.response(200, "Limits, spend and budgets", usage_limits)
    @document_errors(ns, _error, 401)
    @login_required
    def get(self):
        """My rate limits, spend per period (UTC) and what is left of my budgets (user and key)."""
        return budgets.limits_and_budgets(current_principal())
