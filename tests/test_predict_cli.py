"""`nasfer predict`: folders with broken files, JSON lines, table, CSV, annotated copies, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import pattern_image, png_bytes
from fixtures_config import assert_validation
from nasfer.cli import main
from nasfer.labels import EMOTIONS


@pytest.fixture
def folder(tmp_path) -> Path:
    """photos/: two good crops (one nested), a corrupt .jpg, a truncated .png and a text file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(png_bytes(pattern_image(3, rng)))
    (root / "sub" / "b.png").write_bytes(png_bytes(pattern_image(4, rng)))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "cut.png").write_bytes(png_bytes(pattern_image(1, rng))[:60])
    (root / "notes.txt").write_text("not an image, and not picked up from a folder")
    (root / ".hidden.png").write_bytes(b"ignored")
    return root


def run(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_with_broken_files_gives_records_and_goes_on(folder, tiny_onnx, capsys):
    code, out, err = run(capsys, folder, "--json", "--detector", "none", "--model", tiny_onnx)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    by_name = {Path(r["file"]).name: r for r in records}
    assert sorted(by_name) == ["a.png", "b.png", "broken.jpg", "cut.png"]
    for name in ("broken.jpg", "cut.png"):
        assert set(by_name[name]) == {"file", "error"} and name in by_name[name]["error"]
    good = by_name["a.png"]
    assert good["image"] == {"width": 48, "height": 48} and len(good["faces"]) == 1
    face = good["faces"][0]
    assert face["box"] == [0, 0, 48, 48] and set(face["scores"]) == set(EMOTIONS) and face["label"] in EMOTIONS
    assert "2 image(s) read" in err and "2 unreadable" in err and "Traceback" not in err


def test_table_csv_and_annotated_copies(folder, tiny_onnx, tmp_path, capsys):
    table_csv, annotated = tmp_path / "out.csv", tmp_path / "annotated"
    code, out, err = run(capsys, folder, "--detector", "none", "--model", tiny_onnx, "--csv", table_csv,
                         "--annotate", annotated)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["FILE", "FACE", "BOX", "(x,y,w,h)"]
    assert any("a.png" in line and "0,0,48,48" in line for line in lines)
    assert any("broken.jpg" in line and "error:" in line for line in lines)
    rows = list(csv.DictReader(table_csv.open()))
    assert [Path(r["file"]).name for r in rows] == ["a.png", "broken.jpg", "cut.png", "b.png"]
    assert rows[0]["label"] in EMOTIONS and rows[0]["w"] == "48" and rows[1]["error"]
    assert abs(sum(float(rows[0][k]) for k in EMOTIONS) - 1) < 1e-3
    written = sorted(p.relative_to(annotated).as_posix() for p in annotated.rglob("*.png"))
    assert written == ["photos/a.png", "photos/sub/b.png"]


def test_real_photo_with_haar(tiny_onnx, tmp_path, capsys):
    from skimage import data
    from PIL import Image

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(photo, quality=92)
    code, out, _ = run(capsys, photo, "--json", "--model", tiny_onnx, "--annotate", tmp_path / "ann")
    assert code == 0
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert len(record["faces"]) == 1 and record["faces"][0]["box"][2] > 60
    assert (tmp_path / "ann" / "astronaut.jpg").is_file()


def test_no_face_is_reported_not_an_error(tiny_onnx, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    blank.write_bytes(png_bytes(np.full((120, 160), 128, np.uint8)))
    code, out, _ = run(capsys, blank, "--model", tiny_onnx)
    assert code == 0 and "no face found" in out


def test_exit_status_1_when_nothing_could_be_read(folder, tiny_onnx, tmp_path, capsys):
    code, out, err = run(capsys, folder / "broken.jpg", tmp_path / "missing.png", "--json", "--model", tiny_onnx)
    assert code == 1 and "no image could be read" in err
    errors = [json.loads(line)["error"] for line in out.splitlines()]
    assert "no such file" in errors[1]
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, tmp_path / "empty", "--model", tiny_onnx)
    assert code == 1 and "no images found" in err


def test_strict_stops_at_the_first_unreadable_file(folder, tiny_onnx, capsys):
    code, _, err = run(capsys, folder, "--strict", "--detector", "none", "--model", tiny_onnx)
    assert code == 2 and err.startswith("nasfer predict: error:") and "broken.jpg" in err
    assert "Traceback" not in err


def test_a_stopped_run_keeps_the_previous_csv(folder, tiny_onnx, tmp_path, capsys):
    """Before: --csv was truncated when the run started, so a --strict run stopped at broken.jpg (after a.png)
    replaced last run's results with a header and one row."""
    results = tmp_path / "results.csv"
    code, _, _ = run(capsys, folder, "--detector", "none", "--model", tiny_onnx, "--csv", results)
    assert code == 0
    before = results.read_text()
    assert len(before.splitlines()) == 5  # header, a.png, broken.jpg, cut.png, b.png
    code, _, err = run(capsys, folder, "--strict", "--detector", "none", "--model", tiny_onnx, "--csv", results)
    assert code == 2 and results.read_text() == before
    partial = tmp_path / "results.csv.partial"
    assert [Path(r["file"]).name for r in csv.DictReader(partial.open())] == ["a.png"]
    assert f"nasfer predict: {results} keeps its previous contents; what was written before the stop is in " \
           f"{partial}" in err and "Traceback" not in err


def test_ctrl_c_keeps_the_previous_csv(folder, tiny_onnx, tmp_path, capsys, monkeypatch):
    from nasfer.commands import predict

    results = tmp_path / "results.csv"
    results.write_text("last run\n")
    real = predict.analyse

    def interrupted(items, recognizer, cfg):
        records = real(items, recognizer, cfg)
        yield next(records)
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "analyse", interrupted)
    code, _, err = run(capsys, folder, "--detector", "none", "--model", tiny_onnx, "--csv", results)
    assert code == 130 and results.read_text() == "last run\n"
    assert "nasfer: interrupted" in err and "results.csv.partial" in err
    assert len((tmp_path / "results.csv.partial").read_text().splitlines()) == 2


@pytest.mark.parametrize("argv, message", [
    (["--detector", "dlib"], "unknown face detector 'dlib'"),
    (["--model", "/nonexistent/model.onnx"], "model file not found"),
    (["--detector", "yunet", "--detector-model", "/nonexistent/yunet.onnx"], "no such file"),
])
def test_setup_errors_are_one_line(argv, message, folder, tiny_onnx, capsys):
    argv = argv if "--model" in argv else [*argv, "--model", tiny_onnx]
    code, _, err = run(capsys, folder, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_progress_bar_for_many_files_stays_off_stdout(tiny_onnx, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(12):
        (tmp_path / f"{i:02d}.png").write_bytes(png_bytes(pattern_image(i % 7, rng)))
    code, out, _ = run(capsys, tmp_path, "--json", "--detector", "none", "--model", tiny_onnx)
    assert code == 0 and len(out.splitlines()) == 12
    assert all(json.loads(line)["faces"] for line in out.splitlines())


def test_a_face_crop_given_to_the_detector_says_how_to_classify_it(tiny_onnx, tmp_path, capsys):
    """Before: "no face found" and nothing else for a 48x48 crop."""
    crop = tmp_path / "crop.png"
    crop.write_bytes(png_bytes(np.full((48, 48), 128, np.uint8)))
    code, out, _ = run(capsys, crop, "--model", tiny_onnx)
    assert code == 0 and "no face found" in out and "--detector none" in out
    code, out, _ = run(capsys, crop, "--model", tiny_onnx, "--json")
    record = json.loads(out)
    assert record["faces"] == [] and "detector" in record["hint"] and "none" in record["hint"]
    code, out, _ = run(capsys, crop, "--model", tiny_onnx, "--json", "--detector", "none")
    assert len(json.loads(out)["faces"]) == 1 and "hint" not in json.loads(out)


@pytest.mark.parametrize("value", ["-1", "-3"])
def test_negative_max_faces_is_an_error_not_an_empty_result(folder, tiny_onnx, capsys, value):
    """Before: --max-faces -1 silently dropped every face."""
    code, out, err = run(capsys, folder, "--max-faces", value, "--model", tiny_onnx)
    assert code == 2 and "max_faces must be >= 0" in err and out == ""


def test_predict_with_a_checkpoint_says_to_export_it(folder, tmp_path, capsys):
    (tmp_path / "best.pt").write_bytes(b"x")
    code, _, err = run(capsys, folder, "--model", tmp_path / "best.pt")
    assert code == 2 and "nasfer export --checkpoint" in err and ".onnx" in err and "SHA-256" not in err


def test_progress_off_a_terminal_is_a_few_lines_not_bar_frames(tiny_onnx, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(30):
        (tmp_path / f"{i:02d}.png").write_bytes(png_bytes(pattern_image(i % 7, rng)))
    code, out, err = run(capsys, tmp_path, "--json", "--detector", "none", "--model", tiny_onnx)
    assert code == 0 and len(out.splitlines()) == 30
    progress = [line for line in err.splitlines() if line.startswith("predict: ")]
    assert "\r" not in err and 3 <= len(progress) <= 11 and progress[-1].startswith("predict: 30/30 img")


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    """Before: `nasfer predict DIR --json | head -1` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    from PIL import Image

    folder = tmp_path / "crops"
    folder.mkdir()
    face = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8))
    for i in range(300):  # ~150 KB of JSON lines: more than a pipe holds
        face.save(folder / f"{i:03d}.png")
    proc = subprocess.Popen([sys.executable, "-m", "nasfer", "predict", str(folder), "--json", "--detector", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and first.startswith(b"{")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_csv_to_standard_output(folder, tiny_onnx, capsys):
    """Before: `--csv -` wrote a file named '-'."""
    code, out, err = run(capsys, folder, "--detector", "none", "--model", tiny_onnx, "--csv", "-")
    rows = list(csv.reader(out.splitlines()))
    assert code == 0 and rows[0][:3] == ["file", "face", "x"] and len(rows) > 2
    assert "FILE" not in out and not Path("-").exists()  # no table mixed in, no file named '-'
    code, _, err = run(capsys, folder, "--detector", "none", "--model", tiny_onnx, "--csv", "-", "--json")
    assert code == 2 and "choose one" in err


def test_recognizer_flags_are_declared_once_for_predict_video_and_serve():
    """--model, --detector, --detector-model and --threshold mean the same in the three commands that run
    the recognizer, and each command's config hands its own fields (0 = not set) to EmotionRecognizer."""
    import dataclasses

    from nasfer.commands.predict import PredictConfig
    from nasfer.runtime.options import RecognizerOptions, recognizer_kwargs
    from nasfer.runtime.video import VideoConfig
    from nasfer.service.config import ServeConfig

    shared = {f.name: (f.default, f.metadata["help"]) for f in dataclasses.fields(RecognizerOptions)
              if f.metadata.get("cli") is not False}
    assert set(shared) == {"model", "detector", "detector_model", "threshold"}  # and `explicit`, no flag
    for cls in (PredictConfig, VideoConfig, ServeConfig):
        fields = {f.name: (f.default, f.metadata["help"]) for f in dataclasses.fields(cls)}
        assert {name: fields[name] for name in shared} == shared, cls.__name__

    video = recognizer_kwargs(VideoConfig(path="clip.mp4", model="m.onnx", threads=0, min_face=60))
    assert video == {"model": "m.onnx", "detector": "haar", "detector_model": None, "threshold": 0.25,
                     "threads": None, "min_face": 60}
    predict = recognizer_kwargs(PredictConfig(max_faces=3, threads=2, detector="none"))
    assert predict["max_faces"] == 3 and predict["threads"] == 2 and predict["detector"] == "none"
    assert recognizer_kwargs(PredictConfig())["max_faces"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 2.0}, "--threshold must be within 0..1"),
    ({"threshold": -0.1}, "--threshold must be within 0..1"),
    ({"threshold": float("nan")}, "--threshold must be within 0..1"),
    ({"detector": " "}, "--detector must not be empty"),
    ({"detector": "none", "min_face": 20}, "--min-face only applies with --detector yunet or haar"),
    ({"detector": "none"}, None),  # the default --min-face is no request
    ({"max_faces": -1}, "--max-faces: max_faces must be >= 0"),
    ({"min_face": 0}, "--min-face must be >= 1 pixel"),
    ({"threads": -1}, "--threads must be 0..1024"),
    ({"threads": 100_000}, "--threads must be 0..1024"),  # before: hung creating the threads
    ({"threshold": 0.0, "max_faces": 0, "min_face": 1, "threads": 1024}, None),  # boundaries are accepted
    ({"threshold": 1.0, "threads": 0}, None),
])
def test_config_validation(kwargs, message):
    from nasfer.commands.predict import PredictConfig

    cfg = PredictConfig(**kwargs)
    assert_validation(cfg, message)


@pytest.mark.parametrize("argv, message", [(["--threads", "-1"], "--threads must be 0..1024 (0: all cores), got -1"),
                                           (["--threads", "100000"], "--threads must be 0..1024")])
def test_impossible_settings_are_one_line_before_any_work(argv, message, folder, tiny_onnx, capsys):
    """Before: --threads -1 was passed to ONNX Runtime as is, --threads 100000 hung."""
    code, out, err = run(capsys, folder, *argv, "--model", tiny_onnx)
    assert code == 2 and err.startswith(f"nasfer predict: error: {message}") and out == ""
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("side, hint", [(1, False), (10, False), (23, False), (24, True), (48, True), (160, True),
                                        (161, False)])
def test_the_face_crop_hint_is_only_for_sizes_a_face_crop_can_have(side, hint, tiny_onnx, tmp_path, capsys):
    """Before: a 1x1 or 10x10 picture without a face was called "a face crop already"."""
    from nasfer.runtime.api import crop_hint

    assert (crop_hint(side, side) is not None) == hint
    image = tmp_path / "small.png"
    image.write_bytes(png_bytes(np.full((side, side), 128, np.uint8)))
    code, out, _ = run(capsys, image, "--model", tiny_onnx)
    assert code == 0 and "no face found" in out and ("--detector none" in out) == hint


def test_a_list_file_names_the_pictures_for_the_local_backend(folder, tiny_onnx, tmp_path, capsys):
    """Before: `nasfer predict @files.txt` looked for a picture named '@files.txt' (only --backend ray read lists)."""
    listing = tmp_path / "files.txt"
    listing.write_text(f"# pictures to score\n{folder / 'a.png'}\n\n{folder / 'sub'}\n{tmp_path / 'gone.png'}\n"
                       "s3://bucket/c.jpg\n")
    code, out, err = run(capsys, f"@{listing}", "--json", "--detector", "none", "--model", tiny_onnx)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in records] == [str(folder / "a.png"), str(folder / "sub" / "b.png"),
                                            str(tmp_path / "gone.png"), "s3://bucket/c.jpg"]
    assert len(records[0]["faces"]) == 1 and len(records[1]["faces"]) == 1
    assert records[2]["error"] == f"{tmp_path / 'gone.png'}: no such file or folder"
    assert records[3]["error"].startswith("s3://bucket/c.jpg: a URI: read it with --backend ray")


def test_list_files_are_inputs_and_lists_do_not_nest(folder, tiny_onnx, tmp_path, capsys):
    listing, outer = tmp_path / "files.txt", tmp_path / "outer.txt"
    listing.write_text(f"{folder / 'a.png'}\n")
    code, _, err = run(capsys, f"@{listing}", "--model", tiny_onnx, "--csv", listing)
    assert code == 2 and "--csv" in err and listing.read_text() == f"{folder / 'a.png'}\n"  # the list is kept
    outer.write_text(f"@{listing}\n")
    code, _, err = run(capsys, f"@{outer}", "--model", tiny_onnx)
    assert code == 2 and "cannot name another list" in err and "Traceback" not in err
    code, _, err = run(capsys, f"@{tmp_path / 'none.txt'}", "--model", tiny_onnx)
    assert code == 2 and "cannot read the list of sources" in err


def test_an_output_that_cannot_be_made_is_refused_before_any_work(folder, tiny_onnx, tmp_path, capsys):
    """Before (with the staged --csv): `--csv DIR` printed every result, then failed renaming its temporary file
    onto the folder and left `DIR.<pid>-<hex>.tmp` behind; `--annotate FILE` failed part-way with 'File exists'."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("mine")
    for argv, message in ((["--csv", tmp_path / "adir"], f"--csv {tmp_path / 'adir'}: {tmp_path / 'adir'} is a folder"),
                          (["--csv", tmp_path / "afile" / "r.csv"], f"{tmp_path / 'afile'} is a file, so"),
                          (["--annotate", tmp_path / "afile"], f"--annotate {tmp_path / 'afile'}: a file is there")):
        code, out, err = run(capsys, folder, "--detector", "none", "--model", tiny_onnx, *argv)
        assert code == 2 and out == "" and message in err and "Traceback" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "photos"]  # nothing else written
    assert list((tmp_path / "adir").iterdir()) == []


def test_a_csv_in_a_new_folder_is_written(folder, tiny_onnx, tmp_path, capsys):
    code, _, err = run(capsys, folder, "--detector", "none", "--model", tiny_onnx, "--csv", tmp_path / "new" / "r.csv")
    assert code == 0, err
    assert len((tmp_path / "new" / "r.csv").read_text().splitlines()) == 5
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["r.csv"]


def test_annotate_never_replaces_a_file_it_did_not_write(tiny_onnx, tmp_path, capsys):
    """Before: `--annotate DIR` silently replaced a user's own photo of the same name in DIR."""
    photo = tmp_path / "in" / "face.png"
    photo.parent.mkdir()
    photo.write_bytes(png_bytes(pattern_image(2, np.random.default_rng(1))))
    out = tmp_path / "ann"
    out.mkdir()
    precious = out / "face.png"
    precious.write_bytes(b"the user's own picture")
    code, _, err = run(capsys, photo, "--detector", "none", "--model", tiny_onnx, "--annotate", out)
    assert code == 2 and "exists and is not an annotated copy nasfer wrote" in err and "Traceback" not in err
    assert precious.read_bytes() == b"the user's own picture"

    precious.unlink()
    for _ in range(2):  # the same command again replaces its own copy
        code, _, err = run(capsys, photo, "--detector", "none", "--model", tiny_onnx, "--annotate", out)
        assert code == 0, err
    from nasfer.runtime.annotate import is_annotated_copy

    assert is_annotated_copy(precious)


def test_a_list_file_saved_with_a_byte_order_mark_reads_its_first_entry(tiny_onnx, tmp_path, capsys):
    """Before: the BOM of a list saved by Windows Notepad became part of the first path ('no such file')."""
    photo = tmp_path / "face.png"
    photo.write_bytes(png_bytes(pattern_image(2, np.random.default_rng(1))))
    listing = tmp_path / "list.txt"
    listing.write_bytes("\ufeff".encode("utf-8") + f"{photo}\n".encode())
    code, out, err = run(capsys, f"@{listing}", "--json", "--detector", "none", "--model", tiny_onnx)
    assert code == 0, err
    assert json.loads(out)["file"] == str(photo)


@pytest.mark.parametrize("argv, message", [
    (["--csv", ""], "--csv needs a name, got an empty one"),  # before: exit 0, nothing written
    (["--annotate", ""], "--annotate needs a name, got an empty one"),
    # before: the file was neither used nor checked
    (["--detector", "none", "--detector-model", "yunet.onnx"], "--detector-model only applies with --detector yunet or haar"),
    # before: accepted, though without a detector no face is looked for at any size
    (["--detector", "none", "--min-face", "60"], "--min-face only applies with --detector yunet or haar"),
    # before: passed, since 40 is the flag's default value (the check compared values, not the flags typed)
    (["--detector", "none", "--min-face", "40"], "--min-face only applies with --detector yunet or haar"),
])
def test_flags_that_would_do_nothing_are_refused(argv, message, tiny_onnx, tmp_path, capsys):
    photo = tmp_path / "face.png"
    photo.write_bytes(png_bytes(pattern_image(2, np.random.default_rng(1))))
    code, _, err = run(capsys, photo, "--model", tiny_onnx, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_the_table_never_shows_an_uncertain_face_at_the_threshold_nor_splits_a_row():
    """Before: a confidence of 0.2499 under threshold 0.25 printed as "0.25 (uncertain)", and a newline in a file
    name split the table row in two."""
    from nasfer.commands.predict import Item, Table

    table = Table([Item(Path("a\nb.png"), "a\nb.png", Path("a\nb.png"))])
    face = {"box": [0, 0, 48, 48], "label": "happy", "uncertain": True, "confidence": 0.2499}
    (row,) = table.rows({"file": "a\nb.png", "faces": [face]})
    assert "\n" not in row and "a?b.png" in row and row.endswith("0.24  (uncertain)")
    (row,) = table.rows({"file": "c.png", "faces": [{**face, "uncertain": False, "confidence": 0.916}]})
    assert row.endswith("happy       0.92")


def test_a_label_named_like_a_column_gets_its_own_score_column(tmp_path):
    """A model whose labels include 'label' or 'x' (a folder dataset's class) gave a CSV with two columns of one
    name, and the Parquet sink typed the 'label' column as a float and failed on the first row; now such a
    label's probabilities go to `score_<label>`."""
    pq = pytest.importorskip("pyarrow.parquet")
    from nasfer.bulk.sinks import create_sink
    from nasfer.commands.predict import csv_header

    labels = ["happy", "label", "x"]
    header = csv_header(labels)
    assert len(set(header)) == len(header) and header[-4:] == ["happy", "score_label", "score_x", "error"]
    record = {"file": "a.png", "faces": [{"box": [1, 2, 3, 4], "label": "label", "confidence": 0.7,
                                          "uncertain": False, "scores": {"happy": 0.1, "label": 0.7, "x": 0.2}}]}
    for suffix in (".csv", ".parquet"):
        sink = create_sink(str(tmp_path / f"out{suffix}"), labels)
        sink.write(record)
        sink.close()
    rows = list(csv.DictReader((tmp_path / "out.csv").read_text().splitlines()))
    assert rows[0]["label"] == "label" and rows[0]["score_label"] == "0.7" and rows[0]["x"] == "1"
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert table[0]["label"] == "label" and table[0]["score_label"] == 0.7 and table[0]["score_x"] == 0.2


def test_labels_x_and_score_x_get_distinct_columns(tmp_path):
    """Review of session 24: labels 'x' and 'score_x' both got the column 'score_x' (the renamed one took the
    other label's name), and the Parquet sink failed; a taken name now gets score_ again until it is free."""
    pq = pytest.importorskip("pyarrow.parquet")
    from nasfer.bulk.sinks import create_sink
    from nasfer.commands.predict import csv_header
    from nasfer.runtime.outputs import score_columns

    assert score_columns(["x", "score_x", "happy"], ["x"]) == ["score_score_x", "score_x", "happy"]
    assert score_columns(["score_x", "x"], ["x"]) == ["score_x", "score_score_x"]  # whatever the order
    labels = ["x", "score_x"]
    header = csv_header(labels)
    assert len(set(header)) == len(header) and header[-3:] == ["score_score_x", "score_x", "error"]
    record = {"file": "a.png", "faces": [{"box": [1, 2, 3, 4], "label": "x", "confidence": 0.6,
                                          "uncertain": False, "scores": {"x": 0.6, "score_x": 0.4}}]}
    sink = create_sink(str(tmp_path / "out.parquet"), labels)
    sink.write(record)
    sink.close()
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert table[0]["x"] == 1 and table[0]["score_score_x"] == 0.6 and table[0]["score_x"] == 0.4
