"""HTTP metrics by route (never the raw path), time to first byte for streams, /metrics and its token."""
from __future__ import annotations

import time

from flask import Blueprint, Response, stream_with_context
from prometheus_client.parser import text_string_to_metric_families

from llmgate import metrics


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_total(samples, route, method="GET", status="200") -> float:
    key = ("llmgate_http_requests_total", (("method", method), ("route", route), ("status", status)))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_url_rule_not_raw_path(client):
    before = scrape(client)
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no/such/path/12345")
    client.post("/healthz")
    client.open("/healthz", method="BREW")
    after = scrape(client)
    assert requests_total(after, "/healthz") - requests_total(before, "/healthz") == 2
    assert requests_total(after, "<unmatched>", status="404") - requests_total(before, "<unmatched>", status="404") == 1
    # A 405 matched no rule either; an invented method is counted as OTHER.
    unmatched = "<unmatched>"
    assert requests_total(after, unmatched, "POST", "405") - requests_total(before, unmatched, "POST", "405") == 1
    assert requests_total(after, unmatched, "OTHER", "405") - requests_total(before, unmatched, "OTHER", "405") == 1
    assert not any("12345" in str(labels) for _, labels in after)
    latency_count = ("llmgate_http_request_duration_seconds_count",
                     (("method", "GET"), ("route", "/healthz"), ("status", "200")))
    assert after[latency_count] - before.get(latency_count, 0) == 2


def test_stream_latency_is_time_to_first_byte_and_in_flight_drops_on_close(app):
    bp = Blueprint("streamtest", __name__)

    @bp.get("/streamtest")
    def stream():
        def body():
            yield b"first\n"
            time.sleep(0.3)
            yield b"second\n"
        return Response(stream_with_context(body()), mimetype="text/plain")

    app.register_blueprint(bp)
    client = app.test_client()
    sum_key = ("llmgate_http_request_duration_seconds_sum",
               (("method", "GET"), ("route", "/streamtest"), ("status", "200")))
    before_sum = scrape(client).get(sum_key, 0.0)
    in_flight = metrics.HTTP_IN_FLIGHT._value.get()
    response = client.get("/streamtest", buffered=False)
    assert metrics.HTTP_IN_FLIGHT._value.get() == in_flight + 1
    assert response.get_data() == b"first\nsecond\n"
    response.close()
    assert metrics.HTTP_IN_FLIGHT._value.get() == in_flight
    observed = scrape(client)[sum_key] - before_sum
    assert observed < 0.25, "the latency of a stream is its time to first byte, not its duration"


def test_metrics_token_when_configured(app_factory):
    client = app_factory(METRICS_TOKEN="m3trics-t0ken").test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.is_json and refused.get_json()["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scrape(client, Authorization="Bearer m3trics-t0ken")


def test_metrics_exposes_the_registered_families(client):
    names = {name for name, _ in scrape(client)}
    assert "llmgate_http_requests_in_flight" in names
