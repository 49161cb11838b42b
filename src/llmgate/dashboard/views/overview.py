"""The landing page: requests, tokens, cost and error rate for the last day and month, by model."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import g, render_template, request

from ...accounting import reports
from .. import budget_view, charts, usage_view
from ..blueprint import bp
from ..session import login_required


@bp.get("/")
@login_required
def overview():
    tz = reports.parse_tz(request.args.get("tz"))
    scope = request.args.get("scope") if g.user.is_admin else None
    user_id = usage_view.scoped_user(g.user, scope)
    metric = request.args.get("metric") if request.args.get("metric") in usage_view.METRICS else "requests"
    label, fmt = usage_view.METRICS[metric]

    hourly = usage_view.window(hours=24, tz=tz, group_by=("hour", "model"), user_id=user_id)
    hours = usage_view.hour_buckets(hourly)
    today = datetime.now(tz).date()
    first_day = today - timedelta(days=29)
    daily = reports.build_report(reports.parse_query(start=first_day.isoformat(), end=today.isoformat(),
                                                     tz=tz.key, group_by="day,model", user_id=user_id))
    days = usage_view.day_buckets(first_day, today)
    chart_24h = charts.line_chart(
        [datetime.fromisoformat(h).strftime("%H:00") for h in hours],
        usage_view.time_series(hourly.rows, bucket="hour", buckets=hours, by="model", metric=metric),
        title=f"{label} per hour by model, last 24 hours ({tz.key})", value_format=fmt)
    chart_30d = charts.line_chart(
        [d[5:] for d in days],
        usage_view.time_series(daily.rows, bucket="day", buckets=days, by="model", metric=metric),
        title=f"{label} per day by model, last 30 days ({tz.key})", value_format=fmt)
    return render_template(
        "overview.html", tz=tz.key, zones=usage_view.time_zones(), scope=scope or "mine", metric=metric,
        metrics=usage_view.METRICS, last_day=usage_view.totals_of(hourly), last_month=usage_view.totals_of(daily),
        first_day=first_day, chart_24h=chart_24h, chart_30d=chart_30d,
        budget=budget_view.status("user", g.user))
