"""The SVG chart module: readable without colour, escaped, round axis values."""
from __future__ import annotations

from llmgate.dashboard import charts


def test_line_chart_names_every_series_and_differs_by_dash_and_marker():
    svg = charts.line_chart(["a", "b", "c"], [charts.Series("gpt", [1, 2, 3]), charts.Series("claude", [3, 2, 1])],
                            title="Requests")
    assert "<figcaption>Requests</figcaption>" in svg and 'role="img"' in svg
    assert ">gpt</text>" in svg and ">claude</text>" in svg  # a legend in words
    assert 'stroke-dasharray="6 3"' in svg  # the second series is dashed, not just another colour
    assert "<rect" in svg and "<circle" in svg  # and has another marker shape
    assert "claude, b: 2" in svg  # a tooltip per point


def test_axis_values_are_round_numbers():
    svg = charts.line_chart(["x", "y"], [charts.Series("s", [0, 21])], title="t")
    for tick in (">0<", ">5<", ">10<", ">15<", ">20<"):
        assert tick in svg
    assert ">6<" not in svg and ">19<" not in svg


def test_labels_are_escaped():
    svg = charts.bar_chart([("<script>alert(1)</script>", 3.0)], title="<b>t</b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg


def test_empty_data_says_so():
    assert "No data in this period." in charts.line_chart([], [], title="t")
    assert "No data in this period." in charts.bar_chart([], title="t")
