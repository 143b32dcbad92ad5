"""Inference speed on this machine, written to JSON: nasfer's ONNX engine and, when installed, the `fer` package.

Measured (median over repeated runs after a warm-up):
- classifier throughput, faces/s, at batch 1 and batch 64 (nasfer: `Classifier.predict`);
- end-to-end milliseconds per 640x480 photo with one face (decode excluded, detect + crop + classify),
  timed in alternation with `fer`'s (blocks of 10 calls of each per round, so load changes hit both alike),
  for each detector: haar, and yunet where its model is available, with a profile of the parts
  (JPEG decode, colour conversion, detection, crop + alignment, classification);
- first-result latency: seconds from starting a new Python process to the first result for that photo;
- the small-face floor kept at that speed: faces found per detector in a generated 3000x2000 group photo
  with the astronaut's face pasted at 40-300 px (`recall_floor`);
- the load average before and after, and the busiest other processes (a benchmark is only fair on a
  quiet machine: the JSON says how quiet it was).

Targets (issue 14): YuNet path at most a third of `fer`'s end-to-end time, Haar path no slower than
`fer`'s; `ratios.targets` says whether this run met them.

The `fer` package (Keras/TensorFlow) lives in a separate benchmark venv, never in nasfer's: run this script
with that venv's python (after `pip install -e .` there) to measure both in the same run; without it, the
JSON says `fer` was not importable. `fer` figures: classify = `detect_emotions(img, face_rectangles=...)`
(it classifies the given boxes one by one), end to end = `detect_emotions(img)` with its default OpenCV Haar.

Usage:
  python benchmarks/inference_speed.py [--model FILE.onnx] [--yunet FILE.onnx] [--photo FILE] [--out FILE.json]
Without --model the shipped default is used; if there is none, a randomly initialised `vgg` (width 32) is
exported to a temporary folder (needs torch; speed does not depend on the weights) and the JSON says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from common import cpu_model, cpu_speed_flags, face_grid, import_fer, timeit

ROOT = Path(__file__).resolve().parents[1]
SHARED_YUNET = ROOT.parent / "shared" / "models" / "face_detection_yunet.onnx"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="ONNX model with its card (default: the shipped model)")
    p.add_argument("--yunet", help=f"YuNet .onnx (default: {SHARED_YUNET} or the user cache)")
    p.add_argument("--photo", help="a photo with one face (default: scikit-image's astronaut on a 640x480 canvas; "
                                   "examples/astronaut.jpg, the same photo, where scikit-image is not installed)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference_speed.json"))
    p.add_argument("--seconds", type=float, default=3.0, help="time spent on each measurement")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")
    p.add_argument("--first-runs", type=int, default=3, help="new processes timed for first-result latency")
    return p.parse_args(argv)


def pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------ inputs
def resolve_model(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """(model path, how it was chosen)."""
    if arg:
        return Path(arg), "given"
    from nasfer.errors import ModelError
    from nasfer.weights import default_model_path

    try:
        return default_model_path(), "shipped default"
    except ModelError:
        pass
    import torch

    from nasfer.checkpoint import make_checkpoint, save_checkpoint
    from nasfer.export import ExportConfig, export_checkpoint
    from nasfer.labels import EMOTIONS
    from nasfer.models import create_model
    from nasfer.preprocessing import Preprocessing

    torch.manual_seed(0)
    model = create_model("vgg", width=32).eval()
    ckpt = make_checkpoint(model=model, model_name="vgg", model_kwargs={"width": 32}, labels=EMOTIONS,
                           preprocessing=Preprocessing())
    save_checkpoint(workdir / "vgg.pt", ckpt)
    out = workdir / "vgg-random.onnx"
    export_checkpoint(ExportConfig(checkpoint=str(workdir / "vgg.pt"), out=str(out)))
    return out, "no shipped default: randomly initialised vgg width 32 (same speed as a trained one)"


def resolve_yunet(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    if SHARED_YUNET.is_file():
        return SHARED_YUNET
    from nasfer.runtime.faces import yunet_cache_path

    return yunet_cache_path() if yunet_cache_path().is_file() else None


def make_photo(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """(640x480 JPEG with one face, where it came from)."""
    import cv2

    if arg:
        return Path(arg), "given"
    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[:, 80:560] = cv2.resize(astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    source = "scikit-image astronaut (public domain), 480x480 on a 640x480 canvas"
    path = workdir / "photo.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path, source


def astronaut() -> np.ndarray:
    """scikit-image's astronaut, RGB 512x512 (from examples/astronaut.jpg where scikit-image is absent)."""
    try:
        from skimage import data

        return data.astronaut()
    except ImportError:
        from PIL import Image

        return np.asarray(Image.open(ROOT / "examples" / "astronaut.jpg").convert("RGB"))


def group_photo(sizes=(40, 48, 64, 80, 100, 125, 150, 200, 300)) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """3000x2000 RGB photo with the astronaut's face pasted at each size (px), on a plain dimmed background."""
    import cv2

    img = np.full((2000, 3000, 3), 90, np.uint8)
    img[:, :, 1] = np.linspace(60, 140, 3000, dtype=np.uint8)[None, :]
    patch = astronaut()[117 - 93:117 + 93, 223 - 93:223 + 93]  # the face with as much context around it
    where, x = [], 50
    for i, s in enumerate(sizes):
        y = 150 + (i % 2) * 1000
        img[y:y + 2 * s, x:x + 2 * s] = cv2.resize(patch, (2 * s, 2 * s), interpolation=cv2.INTER_AREA)
        where.append((x + s, y + s, s))
        x += 2 * s + 40
    return img, where


def busy_processes(limit: int = 6) -> list[str]:
    """The busiest processes other than this one (`ps`), to say in the JSON what else ran."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [line.split(None, 1) for line in out if line.strip()]
    return [" ".join(rest.split())[:160] for pid, rest in rows if pid != str(os.getpid()) and "ps -eo" not in rest][:limit]


def first_result(code: str, runs: int) -> dict[str, Any]:
    """Wall seconds from starting `python -c code` to its exit (it prints one result), median of runs."""
    times, last = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
        last = proc.stdout.strip()
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": runs, "result": last[:200]}


# ------------------------------------------------------------------------------------------------ nasfer
def bench_nasfer(model: Path, photo: Path, yunet: Path | None, args: argparse.Namespace,
                 e2e: dict[str, Any]) -> dict[str, Any]:
    from nasfer.runtime.api import EmotionRecognizer, load_image
    from nasfer.runtime.engine import Classifier

    threads = args.threads or None
    clf = Classifier(model, threads=threads)
    crops = np.random.default_rng(0).integers(0, 256, (64, clf.size, clf.size), dtype=np.uint8)
    out: dict[str, Any] = {"classify": {}, "end_to_end_ms": {}, "faces_found": {}}
    for batch in (1, 64):
        t = timeit(lambda: clf.predict(crops[:batch]), args.seconds)
        out["classify"][f"batch_{batch}"] = {"faces_per_s": batch / t["median_s"], **t}
    rgb = load_image(photo)
    data = photo.read_bytes()
    detectors = {"haar": None, **({"yunet": yunet} if yunet else {})}
    out["profile_ms"] = {"decode_jpeg": 1000 * timeit(lambda: load_image(data), args.seconds)["median_s"]}
    group, where = group_photo()
    out["recall_floor"] = {"photo": "3000x2000, astronaut face at " + ", ".join(str(s) for *_, s in where) + " px"}
    for name, det_model in detectors.items():
        rec = EmotionRecognizer(model, detector=name, detector_model=det_model, threads=threads)
        out["faces_found"][name] = len(rec.detect(rgb))
        out["profile_ms"][name] = profile(rec, rgb, args.seconds / 2)
        e2e[f"nasfer/{name}"] = (lambda r: lambda: r.detect(rgb))(rec)
        boxes = rec.face_detector.detect(group)
        found = [s for cx, cy, s in where
                 if any(abs(b.x + b.w / 2 - cx) < s / 3 and abs(b.y + b.h / 2 - cy) < s / 3 for b in boxes)]
        out["recall_floor"][name] = {"found_sizes": found, "found": len(found), "of": len(where),
                                     "other_boxes": len(boxes) - len(found)}
    if not yunet:
        out["end_to_end_ms"]["yunet"] = "skipped: no YuNet model (--yunet FILE or `nasfer models fetch yunet`)"
    code = ("from nasfer.runtime.api import EmotionRecognizer; "
            f"f = EmotionRecognizer({str(model)!r}).detect({str(photo)!r}); "
            "print(f[0].label if f else 'no face')")
    out["first_result_s"] = first_result(code, args.first_runs)
    return out


def profile(rec, rgb: np.ndarray, seconds: float) -> dict[str, float]:
    """Median ms of each part of `rec.detect_rgb`: colour conversion, detection, crop + alignment, classify."""
    from nasfer.runtime.faces import to_gray

    boxes = rec.boxes(rgb)
    crops = rec.crops(rgb, boxes)
    parts = {"gray": lambda: to_gray(rgb), "detect": lambda: rec.boxes(rgb), "crop_align": lambda: rec.crops(rgb, boxes),
             "classify": lambda: rec.classifier.predict(crops)}
    return {k: 1000 * timeit(fn, seconds)["median_s"] for k, fn in parts.items()}


# ------------------------------------------------------------------------------------------------ fer
def bench_fer(photo: Path, args: argparse.Namespace, e2e: dict[str, Any]) -> dict[str, Any]:
    try:
        import cv2

        FER = import_fer()
    except ImportError as exc:
        return {"available": False,
                "note": f"the `fer` package is not importable here ({exc}); run this script with the python "
                        "of the benchmark venv that has it to compare in the same run"}
    detector = FER(mtcnn=False)
    bgr = cv2.imread(str(photo))
    out: dict[str, Any] = {"available": True, "version": pkg_version("fer"), "classify": {}, "end_to_end_ms": {}}
    # Classifier alone: the face boxes are given, so only fer's crop + classify runs (one face at a time).
    found = detector.detect_emotions(bgr)
    box = tuple(int(v) for v in found[0]["box"]) if found else (220, 140, 200, 200)
    x, y, w, h = box
    face = bgr[max(0, y):y + h, max(0, x):x + w]
    try:
        for batch, (img, boxes) in ((1, face_grid(face, 1, 1, pad=20)), (64, face_grid(face, 8, 8, pad=20))):
            t = timeit(lambda: detector.detect_emotions(img, face_rectangles=boxes), args.seconds)
            out["classify"][f"batch_{batch}"] = {"faces_per_s": batch / t["median_s"], **t}
        out["classify"]["method"] = "detect_emotions(img, face_rectangles=boxes)"
    except TypeError as exc:  # an old fer without face_rectangles
        out["classify"] = {"error": f"face_rectangles unsupported ({exc})"}
    e2e["fer/haar"] = lambda: detector.detect_emotions(bgr)
    out["faces_found"] = {"haar": len(found)}
    code = ("import cv2; from fer.fer import FER; "
            f"r = FER(mtcnn=False).detect_emotions(cv2.imread({str(photo)!r})); "
            "print(max(r[0]['emotions'], key=r[0]['emotions'].get) if r else 'no face')")
    out["first_result_s"] = first_result(code, args.first_runs)
    return out


def interleaved(fns: dict[str, Any], seconds: float, min_rounds: int = 4, block: int = 10) -> dict[str, dict[str, float]]:
    """Median / min ms per call of each function, timed in alternating blocks of `block` consecutive calls of
    each (one block per tool per round), so a change in the machine's load during the run weighs on all of
    them alike, while each tool is timed in the steady state a program calling it repeatedly sees. (One call
    of each per round made every tool pay for the one before it: TensorFlow's and OpenCV's idle threads
    still spinning, caches filled by the other; measured here, nasfer's YuNet path 14.8 ms alone and 21 ms
    between `fer` calls.) `cpu_median` is the process's CPU time per call (all its threads), which other
    processes on a busy machine inflate far less than wall time."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < seconds * len(fns):
        rounds += 1
        for name, fn in fns.items():
            for _ in range(block):
                t, c = time.perf_counter(), time.process_time()
                fn()
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    return {k: {"median": 1000 * statistics.median(v), "min": 1000 * min(v), "runs": len(v),
                "cpu_median": 1000 * statistics.median(cpu[k]), "interleaved": f"blocks of {block} calls"}
            for k, v in times.items()}


def ratios(nasfer: dict[str, Any], fer: dict[str, Any]) -> dict[str, Any]:
    """nasfer / fer for throughput, fer / nasfer for times: > 1 means nasfer is faster."""
    if not fer.get("available"):
        return {"note": "no `fer` measurements in this run"}
    out: dict[str, Any] = {}
    for batch in ("batch_1", "batch_64"):
        try:
            out[f"classify_{batch}_speedup"] = (nasfer["classify"][batch]["faces_per_s"]
                                                / fer["classify"][batch]["faces_per_s"])
        except (KeyError, TypeError):
            pass
    fer_e2e = (fer.get("end_to_end_ms") or {}).get("haar", {})
    targets = {}
    for name, limit in (("haar", 1.0), ("yunet", 1 / 3)):
        ours = nasfer["end_to_end_ms"].get(name)
        if fer_e2e and isinstance(ours, dict):
            out[f"end_to_end_{name}_speedup"] = fer_e2e["median"] / ours["median"]
            targets[f"{name}_at_most_{limit:.2f}_of_fer"] = ours["median"] <= limit * fer_e2e["median"]
            if "cpu_median" in ours and "cpu_median" in fer_e2e:
                out[f"end_to_end_{name}_cpu_speedup"] = fer_e2e["cpu_median"] / ours["cpu_median"]
                targets[f"{name}_at_most_{limit:.2f}_of_fer_cpu_time"] = ours["cpu_median"] <= limit * fer_e2e["cpu_median"]
    floor = nasfer.get("recall_floor", {})
    targets["recall_floor_kept"] = all(v["found"] == v["of"] for k, v in floor.items() if isinstance(v, dict))
    out["targets"] = targets
    try:
        out["first_result_speedup"] = fer["first_result_s"]["median_s"] / nasfer["first_result_s"]["median_s"]
    except (KeyError, TypeError):
        pass
    return out


def machine() -> dict[str, Any]:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {"cpu": cpu_model(), "cpu_flags": cpu_speed_flags(), "cores": cores, "python": platform.python_version(), "platform": platform.platform(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            **{name: pkg_version(name) for name in ("onnxruntime", "opencv-python-headless", "numpy", "nasfer")}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nasfer-bench-") as tmp:
        work = Path(tmp)
        model, model_source = resolve_model(args.model, work)
        photo, photo_source = make_photo(args.photo, work)
        yunet = resolve_yunet(args.yunet)
        from nasfer.runtime.engine import read_card

        card = read_card(model)
        result = {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": "python benchmarks/inference_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": machine(),
            "other_processes_at_start": busy_processes(),
            "settings": {"seconds_per_measurement": args.seconds, "threads": args.threads or "all cores",
                         "first_result_runs": args.first_runs},
            "model": {"source": model_source, "name": card.get("name"),
                      "architecture": card.get("architecture", {}).get("name"),
                      "params": card.get("architecture", {}).get("params"),
                      "flops": card.get("architecture", {}).get("flops")},
            "photo": {"source": photo_source, "size": "640x480"},
            "yunet_model": str(yunet) if yunet else None,
        }
        e2e: dict[str, Any] = {}
        result["nasfer"] = bench_nasfer(model, photo, yunet, args, e2e)
        result["fer"] = bench_fer(photo, args, e2e)
        for key, value in interleaved(e2e, args.seconds).items():  # end to end: all tools side by side
            tool, detector = key.split("/")
            result[tool]["end_to_end_ms"][detector] = value
        result["ratios"] = ratios(result["nasfer"], result["fer"])
        result["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    n = result["nasfer"]
    print(f"classify: {n['classify']['batch_1']['faces_per_s']:,.0f} faces/s at batch 1, "
          f"{n['classify']['batch_64']['faces_per_s']:,.0f} at batch 64")
    for name, v in n["end_to_end_ms"].items():
        print(f"640x480 photo, {name}: " + (f"{v['median']:.1f} ms ({v['cpu_median']:.1f} ms CPU)"
                                            if isinstance(v, dict) else v))
    print(f"first result in a new process: {n['first_result_s'].get('median_s', float('nan')):.2f} s")
    for name, v in n.get("recall_floor", {}).items():
        if isinstance(v, dict):
            print(f"3000x2000 group photo, {name}: {v['found']} of {v['of']} faces of 40-300 px")
    f = result["fer"]
    if f.get("available"):
        print(f"fer end to end: {f['end_to_end_ms']['haar']['median']:.1f} ms "
              f"({f['end_to_end_ms']['haar']['cpu_median']:.1f} ms CPU); targets: {result['ratios'].get('targets')}")
    print(f"fer: {'measured' if result['fer'].get('available') else 'not importable here'}; written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
