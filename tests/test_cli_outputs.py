"""`nasfer predict` and `nasfer video` never write over a file they read or over another of their outputs.

Each test is a case a new-user review found: before, every one of them ended with exit status 0 and a
destroyed or silently replaced file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import pattern_image, png_bytes
from nasfer.cli import main
from nasfer.runtime.outputs import check_outputs, file_key


def _photos(folder: Path) -> dict[Path, bytes]:
    """astronaut.jpg and camera.png (scikit-image's public-domain photos) in `folder`; their bytes."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg", quality=92)
    Image.fromarray(data.camera()).save(folder / "camera.png")
    return {p: p.read_bytes() for p in (folder / "astronaut.jpg", folder / "camera.png")}


def _run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(code, out, err, *needles):
    assert code == 2 and out == "", (code, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# ------------------------------------------------------------------------------------------------ the helper
def test_same_file_means_samefile_for_existing_files_and_the_resolved_path_otherwise(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    (tmp_path / "link.jpg").symlink_to(photo)
    os.link(photo, tmp_path / "hard.jpg")
    (tmp_path / "sub").mkdir()
    assert file_key(photo) == file_key(tmp_path / "link.jpg") == file_key(tmp_path / "hard.jpg")
    assert file_key(tmp_path / "sub" / ".." / "a.jpg") == file_key(photo)
    assert file_key(tmp_path / "new.csv") == file_key(tmp_path / "sub" / ".." / "new.csv")
    assert file_key(tmp_path / "new.csv") != file_key(tmp_path / "new.json")
    for alias in ("link.jpg", "hard.jpg", "sub/../a.jpg"):
        with pytest.raises(ValueError, match=f"--csv {alias} would overwrite the input {photo}"):
            check_outputs([(f"--csv {alias}", tmp_path / alias)], [photo])
    with pytest.raises(ValueError, match="--out x.mp4 and --csv x.mp4 are the same file"):
        check_outputs([("--out x.mp4", tmp_path / "x.mp4"), ("--csv x.mp4", tmp_path / "sub/../x.mp4")])
    check_outputs([("--csv", tmp_path / "t.csv"), ("--out", tmp_path / "t.mp4")], [photo, tmp_path / "gone.jpg"])


# ------------------------------------------------------------------------------------------------ predict
def test_annotating_into_the_inputs_folder_is_refused_before_any_work(tmp_path, tiny_onnx, capsys, monkeypatch):
    """Before: `cd d && nasfer predict astronaut.jpg camera.png --annotate .` replaced both photos."""
    photos = _photos(tmp_path / "d")
    monkeypatch.chdir(tmp_path / "d")
    result = _run(capsys, "predict", "astronaut.jpg", "camera.png", "--annotate", ".", "--model", tiny_onnx)
    _refused(*result, "--annotate copy astronaut.jpg of astronaut.jpg would overwrite the input astronaut.jpg")
    result = _run(capsys, "predict", tmp_path / "d" / "camera.png", "--annotate", tmp_path / "d", "--model",
                  tiny_onnx)
    _refused(*result, f"would overwrite the input {tmp_path / 'd' / 'camera.png'}")
    result = _run(capsys, "predict", tmp_path / "d", "--annotate", tmp_path, "--model", tiny_onnx)  # d/ -> d/
    _refused(*result, "would overwrite the input")
    assert {p: p.read_bytes() for p in photos} == photos


def test_every_input_gets_its_own_annotated_copy(tmp_path, tiny_onnx, capsys, monkeypatch):
    """Before: t3/a.gif, t3/a.png and t3/a.tiff were all written to DIR/t3/a.png, the last one winning."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "t3").mkdir()
    for n, suffix in enumerate(("gif", "png", "tiff")):
        Image.fromarray(pattern_image(n, rng)).save(tmp_path / "t3" / f"a.{suffix}")
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "predict", "t3", "--annotate", "out", "--detector", "none", "--model", tiny_onnx)
    assert code == 0, err
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert written == ["t3", "t3/a.gif.png", "t3/a.png", "t3/a.tiff.png"]
    code, _, err = _run(capsys, "predict", "t3/a.gif", "t3/a.png", "t3/a.tiff", "t3/a.png", "--annotate", "flat",
                        "--detector", "none", "--model", tiny_onnx)  # a file named twice is one copy, not a clash
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["a.gif.png", "a.png", "a.tiff.png"]


def test_pictures_of_the_same_name_from_two_folders_are_refused_not_merged(tmp_path, tiny_onnx, capsys):
    """Before: /p/astronaut.jpg and /q/astronaut.jpg both became DIR/astronaut.jpg."""
    _photos(tmp_path / "p"), _photos(tmp_path / "q")
    result = _run(capsys, "predict", tmp_path / "p" / "astronaut.jpg", tmp_path / "q" / "astronaut.jpg",
                  "--annotate", tmp_path / "out", "--model", tiny_onnx)
    _refused(*result, f"--annotate copy {tmp_path / 'out' / 'astronaut.jpg'} of {tmp_path / 'p' / 'astronaut.jpg'}",
             f"of {tmp_path / 'q' / 'astronaut.jpg'} are the same file")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("alias", ["a2.jpg", "link.csv", "hard.csv"])
def test_csv_naming_an_input_is_refused(alias, tmp_path, tiny_onnx, capsys, monkeypatch):
    """Before: `nasfer predict a2.jpg --csv a2.jpg` emptied the photo, then reported it unreadable."""
    photo = tmp_path / "a2.jpg"
    photo.write_bytes(png_bytes(pattern_image(1, np.random.default_rng(0))))
    before = photo.read_bytes()
    (tmp_path / "link.csv").symlink_to(photo)
    os.link(photo, tmp_path / "hard.csv")
    monkeypatch.chdir(tmp_path)
    _refused(*_run(capsys, "predict", "a2.jpg", "--csv", alias, "--model", tiny_onnx),
             f"--csv {alias} would overwrite the input a2.jpg")
    assert photo.read_bytes() == before


def test_csv_naming_an_annotated_copy_is_refused(tmp_path, tiny_onnx, capsys):
    photos = _photos(tmp_path / "d")
    result = _run(capsys, "predict", tmp_path / "d", "--annotate", tmp_path / "out", "--csv",
                  tmp_path / "out" / "d" / "camera.png", "--model", tiny_onnx)
    _refused(*result, "are the same file")
    assert not (tmp_path / "out").exists() and {p: p.read_bytes() for p in photos} == photos


# ------------------------------------------------------------------------------------------------ video
def write_clip(path: Path, frames: int = 12, fourcc: str = "mp4v", fps: float = 12.0) -> Path:
    """`frames` frames of the astronaut's head (scikit-image) sliding right on grey, 240x180."""
    import cv2
    from skimage import data

    head = cv2.resize(cv2.cvtColor(data.astronaut()[20:220, 120:320], cv2.COLOR_RGB2BGR), (120, 120))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (240, 180))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((180, 240, 3), 90, np.uint8)
        frame[30:150, 20 + 4 * i:140 + 4 * i] = head
        writer.write(frame)
    writer.release()
    return path


@pytest.mark.parametrize("flags, needle", [
    (["--out", "clip.mp4"], "--out clip.mp4 would overwrite the input clip.mp4"),  # before: the video was replaced
    (["--csv", "clip.mp4"], "--csv clip.mp4 would overwrite the input clip.mp4"),
    (["--csv", "tl.json"], "--csv tl.json and the per-face summary tl.json (--csv's name with .json) are the same"),
    (["--out", "same.mp4", "--csv", "same.mp4"], "--out same.mp4 and --csv same.mp4 are the same file"),
    (["--csv", "t.csv", "--plot", "t.json"], "the per-face summary t.json (--csv's name with .json) and --plot t.json"),
    (["--out", "clip.png", "--plot", "clip"], "--out clip.png and --plot clip.png are the same file"),
    (["--out", "link.mp4"], "--out link.mp4 would overwrite the input clip.mp4"),
])
def test_video_outputs_that_name_the_video_or_each_other_are_refused(flags, needle, tmp_path, tiny_onnx, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = write_clip(tmp_path / "clip.mp4", frames=4)
    (tmp_path / "link.mp4").symlink_to(clip)
    before = clip.read_bytes()
    _refused(*_run(capsys, "video", "clip.mp4", *flags, "--model", tiny_onnx, "--no-progress"), needle)
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "link.mp4"]  # nothing written


def _truncated_avi(tmp_path: Path, keep) -> Path:
    full = write_clip(tmp_path / "full.avi", frames=24, fourcc="MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:keep(data)])
    return cut


def test_a_truncated_video_is_analysed_with_a_warning_and_recorded(tmp_path, tiny_onnx, capsys):
    """Before: the first half of an MJPG .avi went through with exit status 0 and no word of the lost frames."""
    import json

    cut = _truncated_avi(tmp_path, lambda data: len(data) // 2)
    code, out, err = _run(capsys, "video", cut, "--csv", tmp_path / "t.csv", "--model", tiny_onnx, "--no-progress")
    assert code == 0, err
    read = json.loads((tmp_path / "t.json").read_text())["frames"]
    assert 0 < read < 24
    assert f"nasfer video: warning: read {read} of 24 frames: the file may be truncated" in err
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["truncated"] is True and summary["frames_announced"] == 24
    code, _, err = _run(capsys, "video", tmp_path / "full.avi", "--csv", tmp_path / "f.csv", "--model", tiny_onnx,
                        "--no-progress")
    summary = json.loads((tmp_path / "f.json").read_text())
    assert code == 0 and "truncated" not in err and summary["truncated"] is False and summary["frames"] == 24
    code, _, err = _run(capsys, "video", cut, "--max-frames", "3", "--model", tiny_onnx, "--no-progress")
    assert code == 0 and "truncated" not in err  # --max-frames stopped it, not the end of the file


def test_a_video_with_no_readable_frame_exits_1_like_predict(tmp_path, tiny_onnx, capsys):
    """The header and the first frame's chunk header only: OpenCV opens it and reads nothing."""
    cut = _truncated_avi(tmp_path, lambda data: data.find(b"00dc", data.find(b"movi")) + 8)
    code, out, err = _run(capsys, "video", cut, "--model", tiny_onnx, "--no-progress")
    # before: "read 0 of 24 frames: the file may be truncated" then "no face found" on stdout, as if it had looked
    assert code == 1 and f"no frame could be read from {cut}: is it a video, and complete?" in err
    assert "Traceback" not in err and "no face found" not in out and "may be truncated" not in err


def test_a_text_file_named_jpg_given_to_video_says_no_frame_could_be_read(tmp_path, tiny_onnx, capsys):
    fake = tmp_path / "text.jpg"
    fake.write_text("hello\n")
    code, out, err = _run(capsys, "video", fake, "--model", tiny_onnx, "--no-progress")
    assert code in (1, 2) and "Traceback" not in err and "no face found" not in out
    assert "may be truncated" not in err and (f"cannot open {fake} as a video" in err or "no frame could be read" in err)


def test_the_plot_path_printed_is_the_file_written(tmp_path, tiny_onnx, capsys):
    """Before: `--plot tl2` printed "timeline plot: tl2" while matplotlib wrote tl2.png."""
    clip = write_clip(tmp_path / "clip.mp4", frames=3)
    code, out, err = _run(capsys, "video", clip, "--plot", tmp_path / "tl2", "--model", tiny_onnx, "--no-progress")
    assert code == 0, err
    assert f"timeline plot: {tmp_path / 'tl2.png'}" in out.splitlines() and (tmp_path / "tl2.png").is_file()
    assert not (tmp_path / "tl2").exists()
    code, out, err = _run(capsys, "video", clip, "--plot", tmp_path / "tl.v2", "--model", tiny_onnx, "--no-progress")
    _refused(code, out, err, "--plot", "cannot write .v2 files")  # before: after the whole video, a traceback


def test_a_folder_given_as_the_video_is_named_a_folder(tmp_path, tiny_onnx, capsys):
    """Before: `nasfer video DIR` said "DIR: no such file"."""
    _refused(*_run(capsys, "video", tmp_path, "--model", tiny_onnx, "--no-progress"), f"{tmp_path} is a folder")
