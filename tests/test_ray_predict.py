"""`nasfer predict --backend ray`: Ray Data bulk inference gives the local backend's records.

Ray runs in local mode on 2 CPUs, started and stopped by this module. Pictures are generated:
scikit-image's public-domain astronaut pasted on canvases of several sizes, a picture without a face,
a corrupt JPEG, a hidden file and a nested folder.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasfer.bulk.sources import list_sources
from nasfer.bulk.worker import ModelFiles, PredictWorker
from nasfer.cli import main
from nasfer.commands.predict import PredictConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    from skimage import data
    astronaut = Image.fromarray(data.astronaut())
    root = tmp_path_factory.mktemp("bulk") / "photos"
    (root / "sub").mkdir(parents=True)
    layouts = [("a.jpg", 640, 480, 40, 30, 1.0), ("b.png", 800, 600, 300, 90, 0.8),
               ("sub/c.jpg", 400, 300, 20, 10, 0.5), ("sub/d.jpg", 512, 512, 0, 0, 1.0)]
    for name, width, height, x, y, scale in layouts:
        canvas = Image.new("RGB", (width, height), (200, 190, 180))
        side = int(512 * scale)
        canvas.paste(astronaut.resize((side, side)), (x, y))
        canvas.save(root / name, quality=90)
    Image.fromarray(np.full((90, 120, 3), 80, np.uint8)).save(root / "blank.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / ".hidden.jpg").write_bytes(b"skipped by both backends")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def local_ray():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# without Ray
# ------------------------------------------------------------------------------------------------
def test_sources_are_listed_like_the_local_backend(pictures, tmp_path):
    shown = [s.shown for s in list_sources([str(pictures)])]
    assert shown == sorted(shown) and len(shown) == 6
    assert not any(".hidden" in s or s.endswith(".txt") for s in shown)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# a comment\n\n{pictures / 'a.jpg'}\nfile://{pictures / 'sub'}\n{tmp_path / 'gone.jpg'}\n")
    sources = list_sources([f"@{listing}"])
    assert [s.shown for s in sources] == [str(pictures / "a.jpg"), f"file://{pictures / 'sub' / 'c.jpg'}",
                                          f"file://{pictures / 'sub' / 'd.jpg'}", str(tmp_path / "gone.jpg")]
    assert [s.missing for s in sources] == [False, False, False, True]
    assert sources[1].filesystem == f"file://{pictures / 'sub'}"


def test_a_list_cannot_name_a_list(tmp_path, capsys):
    (tmp_path / "inner.txt").write_text("x.jpg\n")
    (tmp_path / "outer.txt").write_text(f"@{tmp_path / 'inner.txt'}\n")
    code, _, err = run(capsys, "--backend", "ray", f"@{tmp_path / 'outer.txt'}")
    assert code == 2 and "cannot name another list" in err


def test_worker_turns_any_failure_into_an_error_record(pictures):
    worker = PredictWorker(PredictConfig(threads=1), ModelFiles.read("default", None))

    def explode(rgb):
        raise RuntimeError("boom")

    worker.recognizer.detect_rgb = explode
    batch = {"index": np.arange(2), "location": np.array([str(pictures / "a.jpg"), str(pictures / "corrupt.jpg")]),
             "shown": np.array(["a.jpg", "corrupt.jpg"]), "missing": np.array([False, False]),
             "filesystem": np.array(["", ""])}
    out = worker(batch)
    records = [json.loads(r) for r in out["record"]]
    assert list(out["index"]) == [0, 1]
    assert records[0] == {"file": "a.jpg", "error": "a.jpg: RuntimeError: boom"}
    assert records[1]["file"] == "corrupt.jpg" and "cannot decode" in records[1]["error"]


@pytest.mark.parametrize("argv, message", [
    (["--out", "r.jsonl"], "--out only applies with --backend ray"),
    (["--backend", "ray", "--annotate", "ann"], "--annotate is not available with --backend ray"),
    (["--backend", "ray", "--strict"], "--strict is not available with --backend ray"),
    (["--backend", "ray", "--out", "r.xlsx"], "unknown results format '.xlsx'"),
    (["--backend", "ray", "--actors", "-1"], "--actors must be >= 0"),
])
def test_flag_errors_are_one_line_before_ray_starts(pictures, argv, message, capsys):
    code, _, err = run(capsys, pictures, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_outputs_naming_an_input_or_each_other_are_refused_before_ray_starts(pictures, tmp_path, capsys):
    """Before: --csv naming a picture emptied it, and --csv and --out naming one file left only one of them."""
    before = (pictures / "a.jpg").read_bytes()
    code, out, err = run(capsys, pictures, "--backend", "ray", "--csv", pictures / "a.jpg")
    assert code == 2 and out == "" and f"would overwrite the input {pictures / 'a.jpg'}" in err
    assert (pictures / "a.jpg").read_bytes() == before
    listed = tmp_path / "list.csv"  # an @LIST file is an input too (before: --out list.csv replaced it)
    listed.write_text(f"{pictures / 'a.jpg'}\n")
    code, _, err = run(capsys, f"@{listed}", "--backend", "ray", "--out", listed)
    assert code == 2 and f"would overwrite the input {listed}" in err and listed.read_text().endswith("a.jpg\n")
    code, _, err = run(capsys, pictures, "--backend", "ray", "--csv", tmp_path / "r.csv", "--out", tmp_path / "r.csv")
    assert code == 2 and "are the same file" in err and not (tmp_path / "r.csv").exists()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_default_import_path_does_not_need_ray():
    code = ("import sys; import nasfer.cli, nasfer.bulk, nasfer.bulk.pipeline, nasfer.commands.predict, "
            "nasfer.commands.search, nasfer.nas.ray_backend; nasfer.cli.build_parser(); sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_missing_ray_says_how_to_install_it(monkeypatch):
    from nasfer.errors import NasferError
    from nasfer.ray_session import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(NasferError, match=r"pip install 'nasfer\[distributed\]'"):
        require_ray()


# ------------------------------------------------------------------------------------------------
# Ray local mode, 2 CPUs
# ------------------------------------------------------------------------------------------------
def test_ray_backend_writes_the_local_records(pictures, local_ray, tmp_path, capsys):
    import pyarrow.parquet as pq
    code, local_out, _ = run(capsys, pictures, "--json", "--threads", "1", "--csv", tmp_path / "local.csv")
    assert code == 0
    code, ray_out, err = run(capsys, "--backend", "ray", pictures, "--json", "--threads", "1", "--actors", "2",
                             "--batch-size", "2", "--csv", tmp_path / "ray.csv", "--out", tmp_path / "ray.parquet")
    assert code == 0, err
    assert "5 image(s) read, 4 face(s) found, 1 unreadable" in err

    local = jsonl(local_out)
    assert jsonl(ray_out) == local  # same records, same order, same numbers
    assert [bool(r.get("faces")) for r in local] == [True, True, False, False, True, True]
    assert "error" in local[3] and local[3]["file"].endswith("corrupt.jpg")
    assert {f["label"] for r in local for f in r.get("faces", [])} == {"happy"}
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "local.csv").read_text()

    rows = list(csv.reader(io.StringIO((tmp_path / "local.csv").read_text())))
    table = pq.read_table(tmp_path / "ray.parquet")
    assert table.column_names == rows[0]
    as_text = [["" if v is None else str(int(v) if isinstance(v, bool) else v) for v in row.values()]
               for row in table.to_pylist()]
    assert as_text == rows[1:]


def test_ray_backend_reads_uris_and_lists_and_writes_to_a_uri(pictures, local_ray, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text(f"file://{pictures / 'sub'}\n{pictures / 'corrupt.jpg'}\n{tmp_path / 'gone.jpg'}\n"
                       f"file://{tmp_path / 'gone-too.jpg'}\n")
    code, _, err = run(capsys, "--backend", "ray", f"@{listing}", "--threads", "1", "--out",
                       f"file://{tmp_path / 'out' / 'records.jsonl'}")
    assert code == 0, err
    records = jsonl((tmp_path / "out" / "records.jsonl").read_text())
    assert [r["file"] for r in records] == [f"file://{pictures / 'sub' / 'c.jpg'}", f"file://{pictures / 'sub' / 'd.jpg'}",
                                            str(pictures / "corrupt.jpg"), str(tmp_path / "gone.jpg"),
                                            f"file://{tmp_path / 'gone-too.jpg'}"]
    code, local_out, _ = run(capsys, pictures / "sub", "--json", "--threads", "1")
    local = jsonl(local_out)
    for got, want in zip(records[:2], local):
        assert {k: v for k, v in got.items() if k != "file"} == {k: v for k, v in want.items() if k != "file"}
    assert "cannot decode" in records[2]["error"]
    assert records[3]["error"] == f"{tmp_path / 'gone.jpg'}: no such file or folder"
    assert records[4]["error"] == f"file://{tmp_path / 'gone-too.jpg'}: no such file or folder"


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_a_stopped_ray_run_keeps_the_previous_results(pictures, local_ray, tmp_path, capsys, monkeypatch, suffix):
    """Before: --out was opened for writing when the run started, so a run stopped part-way (an error, Ctrl-C)
    had already replaced the previous results."""
    from nasfer.bulk import pipeline

    out = tmp_path / f"records{suffix}"
    out.write_bytes(b"last run")
    real = pipeline.records

    def stopped(*args, **kwargs):
        records = real(*args, **kwargs)
        yield next(records)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "records", stopped)
    code, _, err = run(capsys, "--backend", "ray", pictures, "--threads", "1", "--out", out)
    assert code == 130 and out.read_bytes() == b"last run"
    partial = tmp_path / f"records{suffix}.partial"
    assert f"{out} keeps its previous contents; what was written before the stop is in {partial}" in err
    if suffix == ".parquet":
        import pyarrow.parquet as pq
        assert pq.read_table(partial).num_rows == 1  # a readable file: the footer was written
    else:
        assert len(partial.read_text().splitlines()) == (2 if suffix == ".csv" else 1)
