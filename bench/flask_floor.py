"""The floor: the least a Flask app under gunicorn can do to forward a chat completion.

No auth, no routing, no accounting, no metrics: read the JSON body, POST it upstream with a
shared ``httpx2.Client`` (what the provider SDKs use underneath) and pass the bytes back,
streamed when asked. ``bench/gateway_bench.py --targets ...,floor`` serves it with gunicorn
the same way llmgate is served, so "llmgate minus floor" is what llmgate's own logic costs.

    BENCH_FLOOR_UPSTREAMS='{"bench-d0": "http://127.0.0.1:9100/v1"}' \\
        gunicorn -k gevent -w 2 -b 127.0.0.1:9200 'bench.flask_floor:app'
"""
from __future__ import annotations

import json
import os

import httpx2
from flask import Flask, Response, request

app = Flask(__name__)
_UPSTREAMS: dict[str, str] = json.loads(os.environ.get("BENCH_FLOOR_UPSTREAMS", "{}"))
_client: httpx2.Client | None = None


def client() -> httpx2.Client:
    global _client
    if _client is None:  # one per worker process, created after the fork
        _client = httpx2.Client(timeout=60.0, limits=httpx2.Limits(max_connections=256,
                                                                   max_keepalive_connections=256))
    return _client


@app.post("/v1/chat/completions")
def chat() -> Response:
    body = request.get_json()
    base = _UPSTREAMS.get(body.get("model", ""))
    if base is None:
        return Response(json.dumps({"error": {"message": "unknown model"}}), 404, mimetype="application/json")
    upstream = client().build_request("POST", base + "/chat/completions", content=request.get_data(),
                                      headers={"content-type": "application/json", "authorization": "Bearer sk-fake"})
    if body.get("stream"):
        response = client().send(upstream, stream=True)

        def events():
            try:
                yield from response.iter_raw()
            finally:
                response.close()

        return Response(events(), response.status_code, mimetype="text/event-stream")
    response = client().send(upstream)
    return Response(response.content, response.status_code, mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok", 200)
