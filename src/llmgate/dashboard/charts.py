"""Small server-rendered SVG charts: a line chart over time and a horizontal bar chart.

No JavaScript and no external library: the markup is built here, escaped, and scales with its
container (``viewBox``). Series differ by dash pattern and marker shape as well as colour, and
every series is named in a legend, so the charts read in greyscale and to colour-blind eyes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from markupsafe import Markup, escape

# Okabe–Ito palette (distinguishable with the common colour-vision deficiencies).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 2 1 2", "3 6")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "circle", "square", "triangle")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _nice_scale(peak: float) -> tuple[float, int]:
    """A round step (1, 2, 2.5 or 5 times a power of ten) and 3–6 steps that cover ``peak``."""
    if peak <= 0:
        return 1.0, 4
    exponent = 10 ** (math.floor(math.log10(peak)) - 1)
    while True:
        for factor in (1, 2, 2.5, 5):
            step = factor * exponent
            if peak >= 1 and step != int(step):  # counts never need fractional ticks: 5 requests, not 2.5
                continue
            steps = math.ceil(peak / step - 1e-9)
            if steps <= 6:
                return step, max(steps, 3)
        exponent *= 10


def _figure(title: str, svg: str, kind: str) -> Markup:
    return Markup(f'<figure class="chart-figure chart-{kind}"><figcaption>{escape(title)}</figcaption>'
                  f'<div class="chart-scroll">{svg}</div></figure>')


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    r = 3.5
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" fill="{colour}"/>'
    if shape == "triangle":
        return (f'<polygon points="{x:.1f},{y - r - 1:.1f} {x - r - 1:.1f},{y + r:.1f} {x + r + 1:.1f},{y + r:.1f}" '
                f'fill="{colour}"/>')
    if shape == "diamond":
        return (f'<polygon points="{x:.1f},{y - r - 1:.1f} {x + r + 1:.1f},{y:.1f} {x:.1f},{y + r + 1:.1f} '
                f'{x - r - 1:.1f},{y:.1f}" fill="{colour}"/>')
    if shape == "cross":
        return (f'<path d="M{x - r:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}M{x - r:.1f},{y + r:.1f}L{x + r:.1f},'
                f'{y - r:.1f}" stroke="{colour}" stroke-width="2"/>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}"/>'


def line_chart(labels: Sequence[str], series: Sequence[Series], *, title: str,
               value_format: Callable[[float], str] = lambda v: f"{v:,.0f}") -> Markup:
    """One line per series over the shared ``labels`` (time buckets, oldest first).

    Drawn twice — wide, and narrow for phones (CSS shows one) — because a scaled-down wide
    chart has unreadably small text, and a scrolling one hides the newest values."""
    if not labels or not series:
        return _figure(title, '<p class="empty">No data in this period.</p>', "line")
    wide = _line_svg(labels, series, title, value_format, width=760, max_labels=8, legend_cols=3)
    narrow = _line_svg(labels, series, title, value_format, width=380, max_labels=4, legend_cols=1)
    return _figure(title, f'<div class="wide">{wide}</div><div class="narrow">{narrow}</div>', "line")


def _line_svg(labels: Sequence[str], series: Sequence[Series], title: str, value_format: Callable[[float], str],
              *, width: int, max_labels: int, legend_cols: int, height: int = 280) -> str:
    left, right, top, bottom = 56, 28, 16, 48
    legend_rows = math.ceil(len(series) / legend_cols)
    legend_height = 20 * legend_rows
    plot_w, plot_h = width - left - right, height - top - bottom
    total_h = height + legend_height
    step, steps = _nice_scale(max((max(s.values, default=0) for s in series), default=0))
    peak = step * steps
    step_x = plot_w / max(1, len(labels) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (i * step_x if len(labels) > 1 else plot_w / 2)
        return x, top + plot_h - (v / peak) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {width} {total_h}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">',
             f"<title>{escape(title)}</title>"]
    for k in range(steps + 1):  # horizontal grid lines with value labels
        value = step * k
        y = top + plot_h - plot_h * k / steps
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ccc" '
                     f'stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#333">'
                     f"{escape(value_format(value))}</text>")
    every = max(1, math.ceil(len(labels) / max_labels))  # a few x labels, always the last one
    last = len(labels) - 1
    for i, label in enumerate(labels):
        if i != last and (i % every or last - i < every * 0.75):  # skip those that would collide with the last
            continue
        x, _ = xy(i, 0)
        anchor = "end" if i == last and len(labels) > 1 else "middle"
        parts.append(f'<text x="{x + (6 if anchor == "end" else 0):.1f}" y="{top + plot_h + 18}" '
                     f'text-anchor="{anchor}" fill="#333">{escape(label)}</text>')
    for n, s in enumerate(series):
        colour, dash, shape = COLOURS[n % len(COLOURS)], DASHES[n % len(DASHES)], MARKERS[n % len(MARKERS)]
        points = [xy(i, float(v or 0)) for i, v in enumerate(s.values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g class="series"><polyline points="{path}" fill="none" stroke="{colour}" '
                     f'stroke-width="2"{dash_attr}/>')
        show_markers = len(points) <= 60
        for (x, y), label, value in zip(points, labels, s.values):
            tip = f"{s.name}, {label}: {value_format(float(value or 0))}"
            marker = _marker(shape, x, y, colour) if show_markers else ""
            parts.append(f"<g>{marker}<title>{escape(tip)}</title></g>")
        parts.append("</g>")
        lx = left + (n % legend_cols) * (plot_w / legend_cols)
        ly = height + 20 * (n // legend_cols) - 4
        parts.append(f'<line x1="{lx:.1f}" y1="{ly:.1f}" x2="{lx + 28:.1f}" y2="{ly:.1f}" stroke="{colour}" '
                     f'stroke-width="2"{dash_attr}/>' + _marker(shape, lx + 14, ly, colour))
        parts.append(f'<text x="{lx + 34:.1f}" y="{ly + 4:.1f}" fill="#111">{escape(s.name[:28])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, float]], *, title: str,
              value_format: Callable[[float], str] = lambda v: f"{v:,.0f}") -> Markup:
    """Horizontal bars, biggest first as given, each with its label and its value written out
    (wide and narrow, like :func:`line_chart`)."""
    if not items:
        return _figure(title, '<p class="empty">No data in this period.</p>', "bars")
    wide = _bar_svg(items, title, value_format, width=640, label_w=170)
    narrow = _bar_svg(items, title, value_format, width=360, label_w=110)
    return _figure(title, f'<div class="wide">{wide}</div><div class="narrow">{narrow}</div>', "bars")


def _bar_svg(items: Sequence[tuple[str, float]], title: str, value_format: Callable[[float], str], *,
             width: int, label_w: int) -> str:
    value_w, row_h = 80, 24
    height = row_h * len(items) + 8
    peak = max((float(v or 0) for _, v in items), default=0) or 1.0
    bar_space = width - label_w - value_w
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_h
        w = max(1.0, bar_space * float(value or 0) / peak)
        text = escape(str(label)[: label_w // 7])
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#111">{text}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                     f'fill="{COLOURS[0]}"><title>{text}: {escape(value_format(float(value or 0)))}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" fill="#111">'
                     f"{escape(value_format(float(value or 0)))}</text>")
    parts.append("</svg>")
    return "".join(parts)
