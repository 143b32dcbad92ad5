"""Ray local-mode runs beside their one-process equivalents: wall times of bulk inference
(`nasfer predict` vs `nasfer predict --backend ray`) and of the architecture search
(`nasfer search` vs `nasfer search --backend ray`), each run as a user runs it (a new process).

    python benchmarks/scale_out.py                      # both parts
    python benchmarks/scale_out.py --parts bulk --images 200
    python benchmarks/scale_out.py --parts search --children 8

Pictures are generated (scikit-image's public-domain astronaut pasted at random places and sizes on
640x480 canvases); the search runs on a generated folder dataset. On one machine Ray cannot beat one
process by much: what this measures is Ray's fixed costs (start, actors loading the model, trial
scheduling) against the same work done in one process, and that both give the same results. Each part
writes its section of benchmarks/results/scale_out.json (other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import write_result

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scale_out.json"


def nasfer(*argv: str, stdout=subprocess.DEVNULL) -> tuple[float, subprocess.CompletedProcess]:
    """Run the `nasfer` CLI of this checkout in a new process; (wall seconds, the process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "import sys; from nasfer.cli import main; sys.exit(main())"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *argv], env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"nasfer {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc


def machine() -> dict[str, Any]:
    import ray

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus_usable": len(os.sched_getaffinity(0)), "ray": ray.__version__,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


# ------------------------------------------------------------------------------------------------ bulk
def make_pictures(folder: Path, n: int, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    astronaut = Image.fromarray(data.astronaut())
    for i in range(n):
        side = int(rng.integers(160, 400))
        canvas = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(60, 220, 3)))
        canvas.paste(astronaut.resize((side, side)), (int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))))
        canvas.save(folder / f"{i:05d}.jpg", quality=90)


def bulk(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nasfer-scale-") as tmp:
        pictures = Path(tmp) / "pictures"
        pictures.mkdir()
        make_pictures(pictures, args.images)
        common = [str(pictures), "--model", args.model, "--detector", "haar"]
        runs: dict[str, Any] = {}
        local_out = Path(tmp) / "local.jsonl"
        with open(local_out, "w") as out:
            wall, _ = nasfer("predict", *common, "--json", "--threads", str(args.cpus), stdout=out)
        runs["local, one process"] = {"threads": args.cpus, "wall_s": round(wall, 2)}
        for actors in sorted({1, args.cpus}):
            ray_out = Path(tmp) / f"ray{actors}.jsonl"
            wall, proc = nasfer("predict", "--backend", "ray", *common, "--json", "--threads", "1",
                                "--actors", str(actors), "--ray-cpus", str(args.cpus), "--out", str(ray_out))
            same = ray_out.read_text() == local_out.read_text()
            runs[f"ray local mode, {actors} actor(s) x 1 thread"] = {
                "actors": actors, "threads_per_actor": 1, "wall_s": round(wall, 2), "same_records_as_local": same}
        records = [json.loads(line) for line in local_out.read_text().splitlines()]
    for run in runs.values():
        run["images_per_s"] = round(args.images / run["wall_s"], 2)
    return {"command": f"python benchmarks/scale_out.py --parts bulk --images {args.images}",
            "images": args.images, "faces_found": sum(len(r.get("faces", [])) for r in records),
            "model": args.model, "ray_cpus": args.cpus,
            "wall_s_includes": "process start, model load, Ray start and actor start for the Ray runs",
            "runs": runs}


# ------------------------------------------------------------------------------------------------ search
def make_faces(folder: Path, per_class: int, seed: int = 0) -> None:
    """A <class>/<image> folder of generated 48x48 faces whose bright bar encodes the class (as the tests')."""
    import numpy as np
    from PIL import Image

    from nasfer.labels import EMOTIONS

    rng = np.random.default_rng(seed)
    for label, name in enumerate(EMOTIONS):
        (folder / name).mkdir(parents=True)
        for j in range(per_class):
            img = rng.normal(90, 25, (48, 48))
            band = 4 + label * 40 // len(EMOTIONS)
            if label % 2:
                img[:, band:band + 5] += 120
            else:
                img[band:band + 5, :] += 120
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / name / f"{j:04d}.png")


def search(args: argparse.Namespace) -> dict[str, Any]:
    flags = ["--strategy", "random", "--rungs", *args.rungs, "--eta", "3", "--max-children", str(args.children),
             "--child-batch", str(args.child_batch), "--blocks", "2",
             "--budget-minutes", str(args.search_minutes), "--latency-target-ms", "0", "--max-latency-ms", "0",
             "--no-progress"]
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nasfer-scale-") as tmp:
        data = Path(tmp) / "faces"
        make_faces(data, args.per_class)
        # (One process with --threads 2 is not among them: on a machine busy with other jobs its two
        # OpenMP threads contend for the cores and it ran several times slower than --threads 1.)
        variants = [("local, one process, --threads 1", ["--threads", "1"]),
                    (f"ray local mode, {args.cpus} CPUs, --trial-cpus 1",
                     ["--backend", "ray", "--ray-cpus", str(args.cpus), "--trial-cpus", "1"])]
        children: dict[str, list] = {}
        for name, extra in variants:
            out = Path(tmp) / f"run{len(runs)}"
            wall, _ = nasfer("search", "--data", str(data), "--out", str(out), *flags, *extra)
            summary = json.loads((out / "summary.json").read_text())
            log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
            rung0 = sorted((r["key"], r["accuracy"]) for r in log if r["kind"] == "child")
            children[name] = rung0
            runs[name] = {"wall_s": round(wall, 2), "search_s": summary["elapsed_s"], "children": summary["children"],
                          "children_per_rung": summary["children_per_rung"],
                          "child_seconds_rung0_mean": round(sum(r["seconds"] for r in log if r["kind"] == "child")
                                                            / max(1, summary["children_per_rung"][0]), 2),
                          "best_accuracy": (summary["best"] or {}).get("accuracy"),
                          "best_fidelity": (summary["best"] or {}).get("fidelity")}
    first = next(iter(children.values()))
    for name, run in runs.items():
        run["same_children_and_rung0_accuracy_as_threads_1"] = children[name] == first
    return {"command": f"python benchmarks/scale_out.py --parts search --children {args.children} "
                       f"--per-class {args.per_class} --rungs {' '.join(args.rungs)} --child-batch {args.child_batch}",
            "data": f"generated faces, 7 classes x {args.per_class}", "strategy": "random (same proposals in every run)",
            "rungs": list(args.rungs), "max_children": args.children,
            "wall_s_includes": "process start, data loading, Ray start for the Ray run, result files", "runs": runs}


PARTS = {"bulk": bulk, "search": search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--images", type=int, default=200, help="generated pictures for the bulk part")
    parser.add_argument("--model", default="default", help="model of the bulk part")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for Ray and for the one-process runs")
    parser.add_argument("--search-minutes", type=float, default=20.0, help="budget of each search run (a ceiling: "
                                                                               "--children ends it first)")
    parser.add_argument("--children", type=int, default=8, help="children of each search run")
    parser.add_argument("--per-class", type=int, default=40, help="generated faces per class for the search")
    parser.add_argument("--rungs", nargs="+", default=["20s@16", "60s@16"], help="fidelities of the search runs")
    parser.add_argument("--child-batch", type=int, default=32, help="batch size of the children")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"benchmark": "scale_out"}
    for part in args.parts:
        info = machine()
        section = PARTS[part](args)
        info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result[part] = {"machine": info, **section}
    write_result(result, out)


if __name__ == "__main__":
    main()
