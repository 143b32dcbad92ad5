"""Load test of `nasfer serve` on loopback: requests/s, latency, errors and worker memory under
concurrent clients, while slow clients trickle request bodies and a probe polls /healthz.

Starts the real `nasfer serve` command on 127.0.0.1 (a free port), checks that the photo really
contains a face the server finds, measures single-client latency, then runs N concurrent keep-alive
clients (threads + http.client) for a fixed time while `--slow-clients` connections send a POST
body one byte every 0.5 s (reconnecting whenever the server ends one) and a probe sends GET /healthz
ten times a second (1 s timeout). Worker memory (RSS of the server's worker processes) is read after
a warm-up and again once `--memory-requests` more requests have been answered. Writes JSON. It only
ever connects to 127.0.0.1, to the server it started itself.

    python benchmarks/load_test.py                          # 60 s, 16 clients + 8 slow, default model
    python benchmarks/load_test.py --duration 20 --concurrency 8 --slow-clients 0 --workers 2 \
        --model runs/nas/model.onnx --image my_face.jpg

The photo defaults to examples/astronaut.jpg (scikit-image's public-domain astronaut, 512x512,
one face). To measure another build of the server (e.g. before a change), run this script with
PYTHONPATH pointing at that build's src/ and `--label`/`--out` naming it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import cpu_model

HOST = "127.0.0.1"  # never anything else
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = ROOT / "examples" / "astronaut.jpg"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "load_test.json"


# ------------------------------------------------------------------------------------------------
# The photo
# ------------------------------------------------------------------------------------------------
def load_photo(path: str | None) -> tuple[bytes, str, str]:
    """(bytes, content type, description)."""
    data = Path(path or DEFAULT_PHOTO).read_bytes()
    ctype = "image/png" if data[:4] == b"\x89PNG" else "image/webp" if data[8:12] == b"WEBP" else "image/jpeg"
    return data, ctype, str(path) if path else "examples/astronaut.jpg (scikit-image, public domain), 512x512"


# ------------------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         conn: http.client.HTTPConnection | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def start_server(args: argparse.Namespace, port: int, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nasfer.cli", "serve", "--host", HOST, "--port", str(port),
           "--workers", str(args.workers), "--threads", str(args.threads), "--detector", args.detector,
           "--log-level", "warning", "--timeout", "60"]
    if args.model:
        cmd += ["--model", args.model]
    if args.detector_model:
        cmd += ["--detector-model", args.detector_model]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read().decode(errors='replace')[-3000:]}")
        try:
            if call(port, "GET", "/readyz", timeout=2)[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.25)
    stop_server(proc)
    raise SystemExit("server not ready within 120 s")


def stop_server(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


# ------------------------------------------------------------------------------------------------
# The load
# ------------------------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.server_ms: list[dict] = []
        self.errors: dict[str, int] = {}

    def ok(self, seconds: float, body: bytes, keep_timing: bool) -> None:
        timing = json.loads(body)["timing_ms"] if keep_timing else None
        with self.lock:
            self.latencies.append(seconds)
            if timing:
                self.server_ms.append(timing)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1


def client_loop(port: int, photo: bytes, ctype: str, stop_at: float, rec: Recorder, sample_every: int,
                max_requests: list[int] | None = None) -> None:
    """POST the photo on one keep-alive connection until `stop_at` (or the shared budget runs out)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Content-Type": ctype}
    n = 0
    while time.monotonic() < stop_at:
        if max_requests is not None:
            with rec.lock:
                if max_requests[0] <= 0:
                    break
                max_requests[0] -= 1
        start = time.perf_counter()
        try:
            status, body = call(port, "POST", "/v1/emotions", photo, headers, conn=conn)
        except (OSError, http.client.HTTPException) as exc:
            rec.error(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            continue
        elapsed = time.perf_counter() - start
        if status == 200:
            rec.ok(elapsed, body, keep_timing=(n % sample_every == 0))
        else:
            rec.error(f"HTTP {status}")
        n += 1
    conn.close()


def slow_client_loop(port: int, stop_at: float, counts: dict, lock: threading.Lock) -> None:
    """Trickle a POST body one byte every 0.5 s until `stop_at`; reconnect whenever the server ends it."""
    while time.monotonic() < stop_at:
        try:
            with socket.create_connection((HOST, port), timeout=10) as s:
                s.sendall(b"POST /v1/emotions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                          b"Content-Length: 1000000\r\n\r\n")
                with lock:
                    counts["connections"] += 1
                while time.monotonic() < stop_at:
                    s.sendall(b"\xff")
                    time.sleep(0.5)
        except OSError:
            with lock:
                counts["ended_by_server"] += 1
            time.sleep(0.1)


def health_probe(port: int, stop_at: float, out: dict) -> None:
    """GET /healthz ten times a second (new connection, 1 s timeout), as a strict liveness probe would."""
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        try:
            status, _ = call(port, "GET", "/healthz", timeout=1.0)
            out["latencies"].append(time.perf_counter() - start)
            if status != 200:
                out["failures"] += 1
        except (OSError, http.client.HTTPException):
            out["failures"] += 1
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - start)))


def run_phase(port: int, photo: bytes, ctype: str, clients: int, seconds: float, slow_clients: int = 0,
              probe: bool = False, max_requests: int | None = None) -> dict:
    rec = Recorder()
    start = time.monotonic()
    stop_at = start + seconds
    budget = None if max_requests is None else [max_requests]
    threads = [threading.Thread(target=client_loop, args=(port, photo, ctype, stop_at, rec, 10, budget), daemon=True)
               for _ in range(clients)]
    slow_counts, slow_lock = {"clients": slow_clients, "connections": 0, "ended_by_server": 0}, threading.Lock()
    threads += [threading.Thread(target=slow_client_loop, args=(port, stop_at, slow_counts, slow_lock), daemon=True)
                for _ in range(slow_clients)]
    health = {"latencies": [], "failures": 0}
    if probe:
        threads.append(threading.Thread(target=health_probe, args=(port, stop_at, health), daemon=True))
    for t in threads:
        t.start()
    for t in threads[:clients]:
        t.join()
    wall = time.monotonic() - start
    for t in threads[clients:]:
        t.join()
    result = summarize(rec, wall, clients)
    if slow_clients:
        result["slow_clients"] = slow_counts
    if probe:
        lat = sorted(health["latencies"])
        result["healthz"] = {"probes": len(lat) + health["failures"], "failures": health["failures"],
                             "p50_ms": round(percentile(lat, 0.5) * 1000, 2), "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
                             "max_ms": round(lat[-1] * 1000, 2) if lat else None}
    return result


def worker_rss_mb(master_pid: int) -> dict[int, float]:
    """RSS (MB) of each child process of the server's master (its workers), from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master_pid:
                status = (stat.parent / "status").read_text()
                kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                out[int(stat.parent.name)] = round(kb / 1024, 1)
        except (OSError, ValueError, IndexError, StopIteration):
            continue
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summarize(rec: Recorder, wall: float, clients: int) -> dict:
    lat = sorted(rec.latencies)
    ms = lambda v: round(v * 1000, 2)  # noqa: E731
    server = {k: round(statistics.fmean(t[k] for t in rec.server_ms), 2) for k in ("decode", "detect_classify", "total")} \
        if rec.server_ms else {}
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests_ok": len(lat),
        "errors": sum(rec.errors.values()),
        "server_errors_5xx": sum(v for k, v in rec.errors.items() if k.startswith("HTTP 5")),
        "error_kinds": rec.errors,
        "requests_per_s": round(len(lat) / wall, 2) if wall else 0.0,
        "latency_ms": {"p50": ms(percentile(lat, 0.50)), "p90": ms(percentile(lat, 0.90)),
                       "p99": ms(percentile(lat, 0.99)), "mean": ms(statistics.fmean(lat)) if lat else None,
                       "max": ms(lat[-1]) if lat else None},
        "server_timing_ms_mean": server,
    }


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu_model": cpu_model()}
    try:
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of concurrent load (default 60)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--slow-clients", type=int, default=8,
                        help="connections trickling a body during the load (default 8; 0: none)")
    parser.add_argument("--baseline", type=float, default=10.0,
                        help="seconds of one client first, for unloaded latency (0: skip; default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    parser.add_argument("--memory-requests", type=int, default=2000,
                        help="requests answered between the two worker-memory readings (default 2000; 0: skip)")
    parser.add_argument("--workers", type=int, default=0, help="server worker processes (0: one per core)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (default 2)")
    parser.add_argument("--model", help="ONNX model (default: the server's default model)")
    parser.add_argument("--detector", default="haar", help="face detector (default haar)")
    parser.add_argument("--detector-model", help="detector model file (yunet)")
    parser.add_argument("--image", help="photo to send (default: examples/astronaut.jpg)")
    parser.add_argument("--label", default="", help="name of the server build measured, stored in the JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency < 1 or args.slow_clients < 0 or args.memory_requests < 0:
        parser.error("--duration must be > 0, --concurrency >= 1, --slow-clients and --memory-requests >= 0")

    photo, ctype, photo_desc = load_photo(args.image)
    port = free_port()
    results: dict = {"benchmark": "load_test", "label": args.label, "command": " ".join(sys.argv),
                     "machine": machine(),
                     "server": {"workers": args.workers, "threads": args.threads, "detector": args.detector,
                                "model": args.model or "default"},
                     "photo": {"description": photo_desc, "bytes": len(photo), "content_type": ctype}}
    with tempfile.TemporaryFile() as log:
        proc = start_server(args, port, log)
        try:
            status, body = call(port, "POST", "/v1/emotions", photo, {"Content-Type": ctype})
            if status != 200:
                raise SystemExit(f"the server refused the photo: {status} {body[:300]!r}")
            first = json.loads(body)
            results["photo"].update(first["image"])
            results["photo"]["faces_found"] = len(first["faces"])
            results["photo"]["labels_found"] = [f["label"] for f in first["faces"]]
            results["server"]["model_name"] = first["model"]["name"]
            if not first["faces"]:
                print("warning: the server finds no face in this photo; timings exclude classification",
                      file=sys.stderr)
            _, ready = call(port, "GET", "/readyz")
            results["server"]["ready"] = json.loads(ready)

            if args.baseline > 0:
                print(f"baseline: 1 client for {args.baseline:g} s ...", file=sys.stderr, flush=True)
                results["baseline_1_client"] = run_phase(port, photo, ctype, 1, args.baseline)
            if args.warmup > 0:
                run_phase(port, photo, ctype, args.concurrency, args.warmup)
            rss_before = worker_rss_mb(proc.pid)
            print(f"load: {args.concurrency} clients + {args.slow_clients} slow clients for {args.duration:g} s ...",
                  file=sys.stderr, flush=True)
            results["load"] = run_phase(port, photo, ctype, args.concurrency, args.duration,
                                        slow_clients=args.slow_clients, probe=True)
            if args.memory_requests:
                answered = results["load"]["requests_ok"] + results["load"]["errors"]
                rest = max(0, args.memory_requests - answered)
                print(f"memory: {rest} more requests ...", file=sys.stderr, flush=True)
                top_up = run_phase(port, photo, ctype, args.concurrency, 3600.0, max_requests=rest) if rest else None
                rss_after = worker_rss_mb(proc.pid)
                total_before, total_after = sum(rss_before.values()), sum(rss_after.values())
                results["worker_memory"] = {
                    "requests_between": answered + (top_up["requests_ok"] + top_up["errors"] if top_up else 0),
                    "top_up_errors": top_up["errors"] if top_up else 0,
                    "rss_mb_before": rss_before, "rss_mb_after": rss_after,
                    "total_mb_before": round(total_before, 1), "total_mb_after": round(total_after, 1),
                    "growth_percent": round(100 * (total_after - total_before) / total_before, 2) if total_before else None,
                    "same_workers": set(rss_before) == set(rss_after),
                }
            try:
                results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
            except OSError:
                pass
        finally:
            results["server"]["exit_status"] = stop_server(proc)
            log.seek(0)
            server_log = log.read().decode(errors="replace")
            results["server"]["log_tail"] = server_log.strip().splitlines()[-5:]
            results["server"]["workers_effective"] = args.workers or results["machine"]["cpus_usable"]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    load = results["load"]
    print(json.dumps({k: results[k] for k in ("baseline_1_client", "load", "worker_memory") if k in results}, indent=2))
    health = load["healthz"]
    print(f"\n{load['requests_per_s']} requests/s with {args.concurrency} clients + {args.slow_clients} slow; "
          f"p50 {load['latency_ms']['p50']} ms, p99 {load['latency_ms']['p99']} ms; {load['errors']} errors "
          f"({load['server_errors_5xx']} 5xx); /healthz p99 {health['p99_ms']} ms, {health['failures']} failed; "
          f"memory growth {results.get('worker_memory', {}).get('growth_percent')}% -> {args.out}")
    return 0 if load["errors"] == 0 and health["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
