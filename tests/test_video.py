"""`nasfer video`: tracking ids, smoothing, frame skipping, annotated output and the timeline CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fixtures_config import assert_validation

from nasfer.runtime.api import EmotionRecognizer
from nasfer.cli import main
from nasfer.runtime.faces import Box
from nasfer.labels import EMOTIONS
from nasfer.runtime.video import IoUTracker, Smoother, VideoConfig, analyse_frames, process_video

FRAMES, SIZE, FPS = 24, (320, 240), 12.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """24 frames (2 s at 12 fps) of the astronaut's head sliding right by 3 px per frame, mp4v."""
    import cv2

    from skimage import data
    head = cv2.cvtColor(data.astronaut()[20:220, 120:320], cv2.COLOR_RGB2BGR)  # 200x200 around the face
    head = cv2.resize(head, (150, 150), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    assert writer.isOpened()
    for i in range(FRAMES):
        frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        x = 40 + 3 * i
        frame[45:195, x:x + 150] = head
        writer.write(frame)
    writer.release()
    return path


def test_clip_is_tracked_as_one_face_with_every_second_frame(clip, tiny_onnx, tmp_path):
    out, table = tmp_path / "annotated.mp4", tmp_path / "timeline.csv"
    cfg = VideoConfig(path=str(clip), out=str(out), csv=str(table), every=2, model=str(tiny_onnx), threads=1,
                      progress=False)
    summary = process_video(cfg)
    assert summary.frames == FRAMES and summary.analysed == FRAMES // 2 and summary.fps == pytest.approx(FPS)
    assert [f.id for f in summary.faces] == [1] and summary.faces[0].frames == FRAMES // 2
    assert summary.faces[0].label in EMOTIONS and not summary.interrupted
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == FRAMES // 2 and {r["face_id"] for r in rows} == {"1"}
    assert [int(r["frame"]) for r in rows] == list(range(0, FRAMES, 2))
    assert float(rows[1]["time_s"]) == pytest.approx(2 / FPS, abs=1e-3)
    xs = [int(r["x"]) for r in rows]
    assert xs[-1] - xs[0] > 40  # the box follows the head
    assert abs(sum(float(rows[0][k]) for k in EMOTIONS) - 1) < 1e-3

    import cv2

    cap = cv2.VideoCapture(str(out))
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    cap.release()
    assert n == FRAMES and shape == (SIZE[1], SIZE[0], 3)


def test_video_command(clip, tiny_onnx, tmp_path, capsys):
    table = tmp_path / "t.csv"
    code = main(["video", str(clip), "--csv", str(table), "--every", "3", "--model", str(tiny_onnx),
                 "--no-progress", "--max-frames", "12"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "face #1" in out and "12 frames (4 analysed)" in err
    # before: "mostly happy (happy 91%, ...)" read as shares of time, but the numbers are mean probabilities
    assert "by mean probability (" in out and "; share of time: " in out
    assert len(list(csv.DictReader(table.open()))) == 4


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent/clip.mp4"], "no such file"),
    ([], "give a video file or --webcam N"),
    (["{clip}", "--webcam", "0"], "give a video file or --webcam N"),
    (["{clip}", "--every", "0"], "every must be >= 1"),
    (["--webcam", "-1"], "--webcam must be a camera number >= 0"),  # before: OpenCV crashed (segmentation fault)
    # before: every frame was analysed, then the CSV could not be renamed onto the folder (a .tmp left behind)
    (["{clip}", "--csv", "{tmp}"], "is a folder; give a file name (nothing was done)"),
    # before: wrote files literally named "-" and "-.json" (predict's --csv - means standard output)
    (["{clip}", "--csv", "-"], "--csv -: nasfer video writes the timeline CSV and its .json summary"),
    (["{clip}", "--out", ""], "--out needs a file name, got an empty one"),
])
def test_video_errors_are_one_line(argv, message, clip, tiny_onnx, capsys, tmp_path):
    argv = [a.format(clip=clip, tmp=tmp_path) for a in argv]
    assert main(["video", *argv, "--model", str(tiny_onnx), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"webcam": -1}, "--webcam must be a camera number >= 0"),
    ({"every": 0}, "--every must be >= 1"),
    ({"smoothing": 0.0}, "--smoothing must be within (0, 1]"),
    ({"smoothing": 1.5}, "--smoothing must be within (0, 1]"),
    ({"iou": -0.1}, "--iou must be within 0..1"),  # before: every face linked to any other
    ({"iou": 2.0}, "--iou must be within 0..1"),  # before: no face ever kept its id
    ({"max_age": -1}, "--max-age must be >= 0"),
    ({"max_frames": -5}, "--max-frames must be >= 0"),  # before: silently read no frame
    ({"threads": -1}, "--threads must be 0..1024"),
    ({"min_face": 0}, "--min-face must be >= 1 pixel"),
    ({"threshold": 3.0}, "--threshold must be within 0..1"),
    ({"detector": "none", "min_face": 60}, "--min-face only applies with --detector yunet or haar"),
    ({"detector": "none"}, None),  # the default --min-face is no request
    ({"webcam": 0, "every": 1, "smoothing": 1.0, "iou": 0.0, "max_age": 0, "max_frames": 0, "threads": 1024,
      "min_face": 1}, None),  # boundaries are accepted
    ({"iou": 1.0, "threads": 0}, None),
])
def test_config_validation(kwargs, message):
    cfg = VideoConfig(**kwargs)
    assert_validation(cfg, message)


def test_a_file_that_is_not_a_video(tmp_path, tiny_onnx, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"no video here")
    assert main(["video", str(bad), "--model", str(tiny_onnx), "--no-progress"]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_tracker_keeps_ids_through_motion_and_short_gaps():
    tracker = IoUTracker(iou_threshold=0.3, max_age=2)
    a, b = (10, 10, 50, 50), (200, 10, 50, 50)
    assert tracker.update([a, b])[0] == [1, 2]
    assert tracker.update([(205, 12, 50, 50), (14, 10, 50, 50)])[0] == [2, 1]  # order does not matter
    assert tracker.update([(18, 10, 50, 50)])[0] == [1]  # face 2 missed once
    ids, retired = tracker.update([(22, 10, 50, 50), (206, 12, 50, 50)])
    assert ids == [1, 2] and retired == []  # back within max_age
    for _ in range(3):
        ids, retired = tracker.update([])
    assert retired == [1, 2] and tracker.tracks == {}
    assert tracker.update([a])[0] == [3]  # a retired face comes back under a new id


def test_smoother_is_an_exponential_moving_average():
    s = Smoother(0.25)
    first = s.update(1, np.array([1.0, 0.0]))
    assert first.tolist() == [1.0, 0.0]
    assert s.update(1, np.array([0.0, 1.0])).tolist() == [0.75, 0.25]
    assert s.update(2, np.array([0.0, 1.0])).tolist() == [0.0, 1.0]  # per face
    s.forget([1])
    assert s.update(1, np.array([0.0, 1.0])).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        Smoother(0.0)


def test_analyse_frames_smooths_and_reuses_skipped_frames(tiny_onnx):
    class Fixed:
        def detect(self, image):
            return [Box(0, 0, 48, 48)]

    rec = EmotionRecognizer(tiny_onnx, detector=Fixed(), threads=1)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(5)]
    raw = [rec.detect(f, color="bgr")[0].scores for f in frames]
    results = list(analyse_frames(frames, rec, every=2, smoothing=0.5, fps=10))
    assert [r.analysed for r in results] == [True, False, True, False, True]
    assert results[1].faces is results[0].faces and results[3].time_s == pytest.approx(0.3)
    expected = {k: 0.5 * raw[2][k] + 0.5 * raw[0][k] for k in EMOTIONS}
    assert results[2].faces[0].scores == pytest.approx(expected, abs=1e-6)
    assert all(r.ids == [1] for r in results)


def test_timeline_plot_and_per_face_summary_json(clip, tiny_onnx, tmp_path, capsys):
    import json

    table, plot = tmp_path / "timeline.csv", tmp_path / "timeline.png"
    code = main(["video", str(clip), "--csv", str(table), "--plot", str(plot), "--every", "2",
                 "--model", str(tiny_onnx), "--threads", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads((tmp_path / "timeline.json").read_text())
    assert summary["frames"] == FRAMES and summary["analysed"] == FRAMES // 2 and summary["labels"] == list(EMOTIONS)
    (face,) = summary["faces"]
    assert face["id"] == 1 and face["frames"] == FRAMES // 2
    assert set(face["time_share"]) == set(EMOTIONS) and abs(sum(face["time_share"].values()) - 1) < 1e-3
    rows = list(csv.DictReader(table.open()))
    labels = [r["label"] for r in rows]  # the CSV's smoothed labels give the same shares
    for k in EMOTIONS:
        assert face["time_share"][k] == pytest.approx(labels.count(k) / len(labels), abs=1e-3)
    assert face["mean_confidence"] == pytest.approx(np.mean([float(r["confidence"]) for r in rows]), abs=1e-3)
    assert face["last_s"] == pytest.approx((FRAMES - 2) / FPS, abs=1e-3)
    from PIL import Image

    with Image.open(plot) as img:
        assert img.width >= 600 and img.height >= 200
        pixels = np.asarray(img.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # curves, band and text, not a blank canvas
    assert "timeline plot" in out and "per-face summary" in out


def test_timeline_panels_one_per_face(tmp_path):
    from types import SimpleNamespace

    from nasfer.runtime.timeline import Timeline

    tl = Timeline(EMOTIONS)
    for i in range(10):
        faces = [SimpleNamespace(scores={k: (1.0 if k == ("happy" if i < 6 else "sad") else 0.0) for k in EMOTIONS})
                 for _ in range(2)]
        tl.add(SimpleNamespace(ids=[1, 2] if i < 8 else [1], faces=faces[: 2 if i < 8 else 1], time_s=i * 0.5))
    (one, two) = tl.summaries()
    assert one.time_share["happy"] == pytest.approx(0.6) and one.time_share["sad"] == pytest.approx(0.4)
    assert two.frames == 8 and two.last_s == pytest.approx(3.5) and one.mean_confidence == pytest.approx(1.0)
    single = tl.plot(tmp_path / "a.png")
    from PIL import Image

    with Image.open(single) as img:
        assert img.height > 2.6 * 100 * 2 * 0.9  # two panels of 2.6 in at 100 dpi


def test_plot_without_matplotlib_is_a_one_line_hint(clip, tiny_onnx, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    code = main(["video", str(clip), "--plot", str(tmp_path / "p.png"), "--model", str(tiny_onnx), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'nasfer[plots]'" in err and not (tmp_path / "p.png").exists()


def test_video_progress_off_a_terminal_is_lines(clip, tiny_onnx, capsys):
    code = main(["video", str(clip), "--model", str(tiny_onnx), "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 0 and "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("video: ")]
    assert 2 <= len(lines) <= 11 and lines[-1].startswith(f"video: {FRAMES}/{FRAMES} frames")


def test_one_iou_definition():
    import nasfer.runtime.faces
    import nasfer.runtime.video

    assert nasfer.runtime.video.iou is nasfer.runtime.faces.iou
    assert nasfer.runtime.faces.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_a_missing_camera_is_one_clear_line_without_opencv_warnings():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "nasfer", "video", "--webcam", "97"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["nasfer video: error: cannot open camera 97 as a video"]


def test_a_label_named_like_a_timeline_column_gets_its_own_score_column():
    """As `nasfer predict --csv`: a model whose labels include 'label' or 'x' gave a timeline CSV with two columns
    of one name (a reader by name got the box's x, or the label, instead of the probability)."""
    from nasfer.runtime.video import timeline_header

    header = timeline_header(["happy", "label", "x"])
    assert len(set(header)) == len(header) and header[-3:] == ["happy", "score_label", "score_x"]
    assert timeline_header(list(EMOTIONS))[-len(EMOTIONS):] == list(EMOTIONS)  # the usual labels: as before
