"""The Flask service's operations side: request ids, access log, CORS, /healthz, /readyz,
/v1/model and the Prometheus /metrics (fake recognizer, test client)."""

from __future__ import annotations

import io
import logging
import re

import pytest

from fixtures_service import error_of, parse_prometheus
from nasfer.service.app import create_app
from nasfer.service.config import ServeConfig
from nasfer.service.metrics import Metrics


# ------------------------------------------------------------------------------------------------
# Request ids, logging, CORS, headers
# ------------------------------------------------------------------------------------------------
def test_request_id_is_echoed_generated_or_replaced(client, jpeg, caplog):
    with caplog.at_level(logging.INFO, logger="nasfer"):
        r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    access = [rec for rec in caplog.records if rec.name == "nasfer.service.access"]
    assert access and access[-1].request_id == "abc-123" and "POST" in access[-1].getMessage()

    generated = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    for bad in ("has spaces in it", "x" * 200, "semi;colon"):
        rid = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert rid != bad and re.fullmatch(r"[0-9a-f]{32}", rid)


def test_access_log_escapes_control_characters(client, caplog):
    with caplog.at_level(logging.INFO, logger="nasfer"):
        client.get("/x%0Aforged%20line?a=1")
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "nasfer.service.access"]
    assert lines and "\n" not in lines[-1] and "\\n" in lines[-1]


def test_access_log_uses_the_proxy_forwarded_address(client, caplog):
    with caplog.at_level(logging.INFO, logger="nasfer"):
        client.get("/v1/model", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "nasfer.service.access"]
    assert lines[-1].startswith("203.0.113.9 ")


def test_log_format_carries_the_request_id(fake, jpeg):
    from nasfer.service.logs import FORMAT, RequestIdFilter

    app = create_app(ServeConfig(), recognizer=fake, metrics=Metrics())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("nasfer.service.access")
    logger.addHandler(handler)
    try:
        app.test_client().post("/v1/emotions", data=jpeg, content_type="image/jpeg", headers={"X-Request-ID": "trace-77"})
    finally:
        logger.removeHandler(handler)
    assert "[trace-77] nasfer.service.access" in stream.getvalue()


def test_cors_is_off_by_default(client):
    r = client.get("/healthz", headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_allows_only_configured_origins(make_app, jpeg):
    _, client, _ = make_app(cors_origins="https://app.example, https://other.example/")
    r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg", headers={"Origin": "https://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Origin" in r.headers["Vary"] and r.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    r = client.get("/healthz", headers={"Origin": "https://other.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://other.example"
    r = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = client.options("/v1/emotions", headers={"Origin": "https://app.example",
                                               "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 200
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in r.headers["Access-Control-Allow-Headers"]


def test_cors_wildcard(make_app):
    _, client, _ = make_app(cors_origins="*")
    r = client.get("/v1/model", headers={"Origin": "https://any.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"


# ------------------------------------------------------------------------------------------------
# Operations routes
# ------------------------------------------------------------------------------------------------
def test_healthz_and_readyz(client, make_app):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    body = r.get_json()
    assert r.status_code == 200 and body["status"] == "ready" and body["model"] == "fake-model"
    assert body["detectors"] == {"default": "haar", "available": ["haar", "none"], "loaded": ["haar"]}

    app, client2, _ = make_app()
    app.extensions["nasfer"]["pools"].loaded = lambda: []
    r = client2.get("/readyz")
    assert r.status_code == 503 and error_of(r)["code"] == "not_ready"


def test_model_card(client, fake):
    r = client.get("/v1/model")
    assert r.status_code == 200 and r.get_json() == fake.card


def test_metrics_count_requests_latency_and_faces(client, jpeg):
    for _ in range(2):
        client.post("/v1/emotions", data=jpeg, content_type="image/jpeg")
    client.post("/v1/emotions", data=b"nope", content_type="image/jpeg")
    client.get("/missing")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_prometheus(r.get_data(as_text=True))
    assert samples[('nasfer_http_requests_total', (("method", "POST"), ("route", "/v1/emotions"), ("status", "200")))] == 2
    assert samples[('nasfer_http_requests_total', (("method", "POST"), ("route", "/v1/emotions"), ("status", "415")))] == 1
    assert samples[('nasfer_http_requests_total', (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert samples[("nasfer_faces_detected_total", (("detector", "haar"),))] == 2
    assert samples[("nasfer_images_processed_total", (("detector", "haar"),))] == 2
    assert samples[("nasfer_predictions_total", (("label", "happy"),))] == 2
    assert samples[("nasfer_model_info", (("detector", "haar"), ("model", "fake-model")))] == 1
    route = (("route", "/v1/emotions"),)
    count = samples[("nasfer_http_request_duration_seconds_count", route)]
    assert count == 3 and samples[("nasfer_http_request_duration_seconds_bucket", (("le", "+Inf"),) + route)] == 3
    buckets = [v for (name, labels), v in samples.items()
               if name == "nasfer_http_request_duration_seconds_bucket" and route[0] in labels]
    assert len(buckets) > 5 and buckets == sorted(buckets)  # cumulative, in order


def test_metrics_are_summed_across_worker_processes(tmp_path):
    a, b = Metrics(tmp_path), Metrics(tmp_path)
    a.inc("nasfer_faces_detected_total", {"detector": "haar"}, 3)
    a.observe("nasfer_faces_per_image", 2)
    b.inc("nasfer_faces_detected_total", {"detector": "haar"}, 4)
    b.observe("nasfer_faces_per_image", 1)
    a.flush()
    b.flush()
    for m in (a, b):
        samples = parse_prometheus(m.render())
        assert samples[("nasfer_faces_detected_total", (("detector", "haar"),))] == 7
        assert samples[("nasfer_faces_per_image_count", ())] == 2
        assert samples[("nasfer_faces_per_image_sum", ())] == 3
    a.inc("nasfer_faces_detected_total", {"detector": "haar"})  # live count of the answering worker
    assert parse_prometheus(a.render())[("nasfer_faces_detected_total", (("detector", "haar"),))] == 8
    a.close()
    b.close()


def test_counters_never_go_down_between_scrapes_answered_by_different_workers(tmp_path):
    """Before: worker a answered a scrape with its live count (5), then worker b answered the next one with a's
    snapshot from up to a second earlier (2), so the server's counter went 5 -> 2 (a counter reset to
    Prometheus' rate())."""
    a, b = Metrics(tmp_path, flush_interval=3600), Metrics(tmp_path, flush_interval=3600)  # no timed flushes
    key = ("nasfer_images_processed_total", (("detector", "haar"),))
    a.inc(key[0], {"detector": "haar"}, 2)
    a.flush()
    a.inc(key[0], {"detector": "haar"}, 3)  # live only, until the next flush
    first = parse_prometheus(a.render())[key]
    second = parse_prometheus(b.render())[key]
    assert first == 5 and second >= first
    a.close()
    b.close()


def test_metric_label_values_are_escaped():
    m = Metrics()
    m.inc("nasfer_predictions_total", {"label": 'we"ird\\label\n'})
    assert 'label="we\\"ird\\\\label\\n"' in m.render()
    with pytest.raises(KeyError):
        m.inc("undefined_metric")
