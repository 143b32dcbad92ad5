"""The Flask service's operations side: request ids, access log, CORS, /healthz, /readyz,
/v1/model and the Prometheus /metrics (fake recognizer, test client)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap

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


# Worker processes sharing a PROMETHEUS_MULTIPROC_DIR, as under `nasfer serve`. prometheus_client picks its
# multiprocess mode when it is imported, so they run in a fresh interpreter started with the variable set
# (this test process keeps the single-process mode of the other tests); each Worker is a process forked
# from it that builds its Metrics after the fork, as create_app does in a gunicorn worker.
WORKERS = textwrap.dedent("""
    import json, multiprocessing, traceback
    from nasfer.service.metrics import Metrics, mark_process_dead

    def _serve(conn):
        try:
            metrics = Metrics.from_environment()
            while True:
                op, args = conn.recv()
                if op == "exit":
                    return
                conn.send(("ok", getattr(metrics, op)(*args)))
        except BaseException:  # the parent raises it: a failing worker fails the test with its traceback
            conn.send(("error", traceback.format_exc()))

    class Worker:
        def __init__(self):
            self.conn, child = multiprocessing.Pipe()
            self.process = multiprocessing.get_context("fork").Process(target=_serve, args=(child,))
            self.process.start()
            child.close()  # the worker's end only in the worker: its exit ends recv() here instead of a hang

        def __getattr__(self, op):
            def call(*args):
                self.conn.send((op, args))
                if not self.conn.poll(60):
                    raise RuntimeError(f"worker {self.process.pid} gave no answer to {op} in 60 s "
                                       f"(alive: {self.process.is_alive()})")
                status, value = self.conn.recv()
                if status == "error":
                    raise RuntimeError(f"worker {self.process.pid} failed in {op}: {value}")
                return value
            return call

        def exit(self):  # as gunicorn's master does when a worker exits (nasfer serve's child_exit hook)
            self.conn.send(("exit", ()))
            self.process.join()
            mark_process_dead(self.process.pid)

    scrapes = []
""")


def run_workers(directory, scenario: str) -> list[str]:
    """The /metrics texts that `scenario` appends to `scrapes`."""
    script = WORKERS + textwrap.dedent(scenario) + "\nprint(json.dumps(scrapes))\n"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_worker_that_fails_fails_its_scenario_with_the_workers_traceback(tmp_path):
    """Before: the parent kept the worker's end of the pipe open, so a worker that raised left recv() waiting
    until the 120 s subprocess timeout, with no trace of why (seen once in CI under load). Now its
    traceback comes back and fails the scenario."""
    with pytest.raises(AssertionError, match="(?s)failed in no_such_op: .*AttributeError: 'Metrics' object has no "
                                             "attribute 'no_such_op'"):
        run_workers(tmp_path, """
            worker = Worker()
            worker.no_such_op()
        """)


def test_metrics_are_summed_across_worker_processes(tmp_path):
    texts = run_workers(tmp_path, """
        a, b = Worker(), Worker()
        a.inc("nasfer_faces_detected_total", {"detector": "haar"}, 3)
        a.observe("nasfer_faces_per_image", 2)
        b.inc("nasfer_faces_detected_total", {"detector": "haar"}, 4)
        b.observe("nasfer_faces_per_image", 1)
        b.inc("nasfer_predictions_total", {"label": 'we"ird\\\\label\\n'})
        scrapes += [a.render(), b.render()]
        a.inc("nasfer_faces_detected_total", {"detector": "haar"})
        scrapes.append(b.render())  # a's latest count, at once
        a.exit()
        scrapes.append(b.render())  # a exited: its counts stay
        c = Worker()  # its replacement
        scrapes.append(c.render())
        b.exit()
        c.exit()
    """)
    faces = ("nasfer_faces_detected_total", (("detector", "haar"),))
    for text in texts[:2]:  # whichever worker answers
        samples = parse_prometheus(text)
        assert samples[faces] == 7
        assert samples[("nasfer_faces_per_image_count", ())] == 2
        assert samples[("nasfer_faces_per_image_sum", ())] == 3
        assert samples[("nasfer_faces_per_image_bucket", (("le", "1.0"),))] == 1
        assert samples[("nasfer_faces_per_image_bucket", (("le", "+Inf"),))] == 2
        assert 'label="we\\"ird\\\\label\\n"' in text  # escaped in multiprocess mode too
    assert [parse_prometheus(text)[faces] for text in texts[2:]] == [8, 8, 8]
    assert not any(name.endswith("_created") for text in texts for name, _ in parse_prometheus(text))


def test_counters_never_go_down_between_scrapes_answered_by_different_workers(tmp_path):
    """Before prometheus_client: worker a answered a scrape with its live count (5), then worker b answered the
    next one with a's snapshot from up to a second earlier (2), so the server's counter went 5 -> 2 (a counter
    reset to Prometheus' rate()). Now every update is in the shared files before it returns."""
    texts = run_workers(tmp_path, """
        workers = [Worker(), Worker()]
        for i in range(12):
            workers[i % 2].inc("nasfer_images_processed_total", {"detector": "haar"}, i % 3 + 1)
            scrapes.append(workers[i // 2 % 2].render())  # by the worker that counted, or the other
        for worker in workers:
            worker.exit()
    """)
    key = ("nasfer_images_processed_total", (("detector", "haar"),))
    seen = [parse_prometheus(text)[key] for text in texts]
    assert seen == [sum(j % 3 + 1 for j in range(i + 1)) for i in range(12)]  # every update, in order


def test_model_info_lists_the_models_of_live_workers(tmp_path):
    """nasfer_model_info is a 'livemax' gauge: one series per model without a pid label (as in one process),
    dropped when the last worker serving that model has exited (here: replaced after a reload)."""
    texts = run_workers(tmp_path, """
        a, b = Worker(), Worker()
        for worker in (a, b):
            worker.set("nasfer_model_info", 1, {"model": "old", "detector": "haar"})
        scrapes.append(a.render())
        a.exit()
        scrapes.append(b.render())
        c = Worker()
        c.set("nasfer_model_info", 1, {"model": "new", "detector": "haar"})
        b.exit()
        scrapes.append(c.render())
        c.exit()
    """)

    def models(text):
        return {labels: v for (name, labels), v in parse_prometheus(text).items() if name == "nasfer_model_info"}

    old, new = ((("detector", "haar"), ("model", name)) for name in ("old", "new"))
    assert [models(text) for text in texts] == [{old: 1}, {old: 1}, {new: 1}]


def test_a_process_that_imported_prometheus_client_first_cannot_share_metrics(tmp_path):
    script = textwrap.dedent(f"""
        import os, prometheus_client
        from nasfer.service.metrics import Metrics
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}  # too late: the mode was chosen at import
        try:
            Metrics.from_environment()
        except RuntimeError as exc:
            print(exc)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "imported before PROMETHEUS_MULTIPROC_DIR was set" in done.stdout, done.stderr


def test_each_app_in_one_process_has_its_own_metrics(make_app, jpeg):
    (_, one, _), (_, other, _) = make_app(), make_app()
    one.post("/v1/emotions", data=jpeg, content_type="image/jpeg")
    first, second = (parse_prometheus(c.get("/metrics").get_data(as_text=True)) for c in (one, other))
    key = ("nasfer_images_processed_total", (("detector", "haar"),))
    assert first[key] == 1 and key not in second
    assert not any(name.endswith("_created") for name, _ in first)  # the same series as in multiprocess mode


def test_metric_label_values_are_escaped():
    m = Metrics()
    m.inc("nasfer_predictions_total", {"label": 'we"ird\\label\n'})
    assert 'label="we\\"ird\\\\label\\n"' in m.render()
    with pytest.raises(KeyError):
        m.inc("undefined_metric")
