"""Load test of `nasfer serve` on loopback: requests/s and latency under concurrent clients.

Starts gunicorn through the real `nasfer serve` command on 127.0.0.1 (a free port), checks that the
photo really contains a face the server finds, measures single-client latency first, then runs
N concurrent keep-alive clients (threads + http.client) for a fixed time, and writes the results to
JSON. It only ever connects to 127.0.0.1, to the server it started itself.

    python benchmarks/load_test.py                          # 60 s, 16 clients, default model
    python benchmarks/load_test.py --duration 20 --concurrency 8 --workers 2 --threads 2 \
        --model runs/nas/model.onnx --image my_face.jpg

The photo defaults to a real FER2013 face (../shared/datasets/fer2013.zip) scaled onto a 640x480
grey canvas, the kind of picture the performance budget in DESIGN.md is written for.
"""

from __future__ import annotations

import argparse
import http.client
import io
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
import zipfile
from pathlib import Path

HOST = "127.0.0.1"  # never anything else
ROOT = Path(__file__).resolve().parents[1]
FER2013_ZIP = ROOT.parent / "shared" / "datasets" / "fer2013.zip"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "load_test.json"


# ------------------------------------------------------------------------------------------------
# The photo
# ------------------------------------------------------------------------------------------------
def fer_face_photo(zip_path: Path, size=(640, 480), face_px=240) -> bytes:
    """JPEG of the first PublicTest 'happy' FER2013 face that OpenCV's Haar detector finds once."""
    import cv2
    import numpy as np
    from PIL import Image

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    with zipfile.ZipFile(zip_path) as zf:
        for name in sorted(n for n in zf.namelist() if n.startswith("test/happy/") and n.endswith(".jpg"))[:50]:
            face = np.array(Image.open(io.BytesIO(zf.read(name))).convert("L"))
            canvas = np.full((size[1], size[0]), 128, np.uint8)
            y0, x0 = (size[1] - face_px) // 2, (size[0] - face_px) // 2
            canvas[y0:y0 + face_px, x0:x0 + face_px] = cv2.resize(face, (face_px, face_px),
                                                                  interpolation=cv2.INTER_CUBIC)
            if len(cascade.detectMultiScale(canvas, 1.1, 5, minSize=(30, 30))) == 1:
                buf = io.BytesIO()
                Image.fromarray(canvas).convert("RGB").save(buf, format="JPEG", quality=92)
                return buf.getvalue()
    raise SystemExit(f"no usable face found in {zip_path}")


def load_photo(path: str | None) -> tuple[bytes, str, str]:
    """(bytes, content type, description)."""
    if path:
        data = Path(path).read_bytes()
        ctype = "image/png" if data[:4] == b"\x89PNG" else "image/webp" if data[8:12] == b"WEBP" else "image/jpeg"
        return data, ctype, str(path)
    if not FER2013_ZIP.is_file():
        raise SystemExit(f"pass --image (no {FER2013_ZIP} to build the default face photo from)")
    return fer_face_photo(FER2013_ZIP), "image/jpeg", "FER2013 PublicTest face scaled to 240 px on a 640x480 canvas"


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


def client_loop(port: int, photo: bytes, ctype: str, stop_at: float, rec: Recorder, sample_every: int) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Content-Type": ctype}
    n = 0
    while time.monotonic() < stop_at:
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


def run_phase(port: int, photo: bytes, ctype: str, clients: int, seconds: float) -> dict:
    rec = Recorder()
    start = time.monotonic()
    stop_at = start + seconds
    threads = [threading.Thread(target=client_loop, args=(port, photo, ctype, stop_at, rec, 10), daemon=True)
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    return summarize(rec, wall, clients)


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
        "error_kinds": rec.errors,
        "requests_per_s": round(len(lat) / wall, 2) if wall else 0.0,
        "latency_ms": {"p50": ms(percentile(lat, 0.50)), "p90": ms(percentile(lat, 0.90)),
                       "p99": ms(percentile(lat, 0.99)), "mean": ms(statistics.fmean(lat)) if lat else None,
                       "max": ms(lat[-1]) if lat else None},
        "server_timing_ms_mean": server,
    }


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of concurrent load (default 60)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--baseline", type=float, default=10.0,
                        help="seconds of one client first, for unloaded latency (0: skip; default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    parser.add_argument("--workers", type=int, default=0, help="server worker processes (0: one per core)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (default 2)")
    parser.add_argument("--model", help="ONNX model (default: the server's default model)")
    parser.add_argument("--detector", default="haar", help="face detector (default haar)")
    parser.add_argument("--detector-model", help="detector model file (yunet)")
    parser.add_argument("--image", help="photo to send (default: a FER2013 face on a 640x480 canvas)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency < 1:
        parser.error("--duration must be > 0 and --concurrency >= 1")

    photo, ctype, photo_desc = load_photo(args.image)
    port = free_port()
    results: dict = {"benchmark": "load_test", "machine": machine(),
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
            print(f"load: {args.concurrency} clients for {args.duration:g} s ...", file=sys.stderr, flush=True)
            results["load"] = run_phase(port, photo, ctype, args.concurrency, args.duration)
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
    print(json.dumps({k: results[k] for k in ("baseline_1_client", "load") if k in results}, indent=2))
    print(f"\n{load['requests_per_s']} requests/s with {args.concurrency} clients; p50 {load['latency_ms']['p50']} ms, "
          f"p99 {load['latency_ms']['p99']} ms; {load['errors']} errors -> {args.out}")
    return 0 if load["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
