"""Usage reports: chart and table by day, model or key, in the viewer's time zone, with CSV."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import Response, g, render_template, request

from ...accounting import reports
from ...errors import ValidationError
from .. import charts, usage_view
from ..blueprint import bp
from ..session import login_required


def _query() -> tuple[reports.ReportQuery, dict[str, str]]:
    """The report the page's parameters ask for (scoped to the viewer), and those parameters."""
    tz = reports.parse_tz(request.args.get("tz"))
    group = request.args.get("group") or "day"
    if group not in usage_view.USAGE_GROUPS:
        raise ValidationError("Unknown grouping.", details={"group": f"choose from {', '.join(usage_view.USAGE_GROUPS)}"})
    today = datetime.now(tz).date()
    start = request.args.get("start") or (today - timedelta(days=29)).isoformat()
    end = request.args.get("end") or today.isoformat()
    scope = request.args.get("scope") if g.user.is_admin else None
    query = reports.parse_query(start=start, end=end, tz=tz.key, group_by=group,
                                user_id=usage_view.scoped_user(g.user, scope))
    params = {"tz": tz.key, "group": group, "start": start, "end": end, "scope": scope or "mine"}
    return query, params


@bp.get("/usage")
@login_required
def usage():
    query, params = _query()
    report = reports.build_report(query)
    metric = request.args.get("metric") if request.args.get("metric") in usage_view.METRICS else "requests"
    label, fmt = usage_view.METRICS[metric]
    frame = report.rows
    group = params["group"]
    title = f"{label} by {group}, {params['start']} to {params['end']} ({params['tz']})"
    if group == "day":
        days = usage_view.day_buckets(date.fromisoformat(params["start"]), date.fromisoformat(params["end"]))
        values = usage_view.metric_values(frame, metric).groupby(frame["day"]).sum() if not frame.empty else {}
        series = [charts.Series(label, [float(values.get(d, 0)) for d in days])] if not frame.empty else []
        chart = charts.line_chart([d[5:] for d in days], series, title=title, value_format=fmt)
    else:
        values = usage_view.metric_values(frame, metric) if not frame.empty else []
        names = [usage_view.key_label(row) for _, row in frame.iterrows()] if group == "key" \
            else [str(m) for m in frame.get("model", [])]
        items = sorted(zip(names, [float(v) for v in values]), key=lambda item: -item[1])[:20]
        chart = charts.bar_chart(items, title=title, value_format=fmt)
    return render_template(
        "usage.html", chart=chart, columns=usage_view.table_columns(frame), rows=usage_view.records(frame),
        totals=report.totals, params=params, tz=params["tz"], scope=params["scope"], metric=metric,
        metrics=usage_view.METRICS, zones=usage_view.time_zones(), groups=usage_view.USAGE_GROUPS)


@bp.get("/usage.csv")
@login_required
def usage_csv():
    """Exactly the rows (and the total) the table shows, as CSV."""
    query, params = _query()
    body = reports.to_csv(reports.build_report(query))
    name = f"llmgate-usage-by-{params['group']}-{params['start']}-to-{params['end']}.csv"
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
