"""Usage as the dashboard shows it: scoped report queries, chart series and table columns.

Everything comes from ``llmgate.accounting.reports``; this module only decides whose usage a
viewer may see, fills empty time buckets for charts, and names columns for people.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, available_timezones


# pandas (with numpy and pyarrow, ~90 MB) is imported inside the functions that use it, so
# that API workers which never touch a table don't carry it.
if TYPE_CHECKING:
    import pandas as pd

from ..accounting import reports
from ..models.user import User
from .charts import Series

METRICS = {  # what a chart may plot: label, formatter
    "requests": ("Requests", lambda v: f"{v:,.0f}"),
    "tokens": ("Tokens (input + output)", lambda v: f"{v:,.0f}"),
    "cost_usd": ("Cost (USD)", lambda v: f"${v:,.2f}" if v >= 1 or v == 0 else f"${v:.4f}"),
    "errors": ("Errors", lambda v: f"{v:,.0f}"),
}
USAGE_GROUPS = ("day", "model", "key")
COLUMN_LABELS = {
    "day": "Day", "hour": "Hour", "model": "Model", "key": "Key id", "key_prefix": "Key", "user": "User id",
    "user_email": "User", "provider": "Provider", "requests": "Requests", "errors": "Errors",
    "input_tokens": "Input tokens", "output_tokens": "Output tokens", "cached_tokens": "Cached tokens",
    "cost_usd": "Cost (USD)", "cost_unknown": "Calls without a price",
}
NUMERIC = set(reports.METRICS)


@lru_cache(maxsize=1)
def time_zones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))) + ["UTC"]


def scoped_user(viewer: User, scope: str | None) -> int | None:
    """Whose usage: the viewer's own, or everyone's (``scope=all``) for an administrator only."""
    return None if (scope == "all" and viewer.is_admin) else viewer.id


@dataclass(frozen=True)
class Totals:
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_unknown: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def totals_of(report: reports.Report) -> Totals:
    t = report.totals
    return Totals(int(t["requests"]), int(t["errors"]), int(t["input_tokens"]), int(t["output_tokens"]),
                  float(t["cost_usd"]), int(t["cost_unknown"]))


def window(*, hours: int, tz: ZoneInfo, group_by: tuple[str, ...], user_id: int | None,
           now: datetime | None = None) -> reports.Report:
    """The last ``hours`` hours up to now (whole hours, so hourly buckets are complete)."""
    now = now or datetime.now(timezone.utc)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    query = reports.ReportQuery(start=end - timedelta(hours=hours), end=end, tz=tz, group_by=group_by,
                                user_id=user_id)
    return reports.build_report(query)


def metric_values(frame: pd.DataFrame, metric: str) -> pd.Series:
    if metric == "tokens":
        return frame["input_tokens"] + frame["output_tokens"]
    return frame[metric]


def time_series(frame: pd.DataFrame, *, bucket: str, buckets: list[str], by: str, metric: str,
                label_of=lambda v: str(v), limit: int = 8) -> list[Series]:
    """One series per ``by`` value (the biggest ``limit``, the rest summed as "other"), with a
    value for every bucket — zero where nothing happened."""
    import pandas as pd
    if frame.empty:
        return []
    data = frame.assign(_v=metric_values(frame, metric))
    ranking = data.groupby(by, dropna=False)["_v"].sum().sort_values(ascending=False)
    keep = list(ranking.index[:limit])
    series = []
    for name in keep:
        part = data[data[by] == name] if not pd.isna(name) else data[data[by].isna()]
        values = part.groupby(bucket)["_v"].sum()
        series.append(Series(label_of(name), [float(values.get(b, 0)) for b in buckets]))
    rest = data[~data[by].isin(keep)]
    if not rest.empty:
        values = rest.groupby(bucket)["_v"].sum()
        series.append(Series("other", [float(values.get(b, 0)) for b in buckets]))
    return series


def hour_buckets(report: reports.Report) -> list[str]:
    q = report.query
    out, moment = [], q.start
    while moment < q.end:
        out.append(moment.astimezone(q.tz).isoformat())
        moment += timedelta(hours=1)
    return out


def day_buckets(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def key_label(row: dict[str, Any] | pd.Series) -> str:
    import pandas as pd
    if row.get("key") is None or pd.isna(row.get("key")):
        return "no key (signed-in calls)"
    return f"{row.get('key_prefix') or row.get('key')}…"


def table_columns(frame: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """(column, heading, numeric) for every column of the report, in the CSV's order."""
    return [(c, COLUMN_LABELS.get(c, c), c in NUMERIC) for c in frame.columns]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    import pandas as pd
    return [{k: (None if (not isinstance(v, str) and pd.isna(v)) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]
