"""Frames in, a per-face emotion timeline out.

Every K-th frame (`every`) is analysed; a greedy IoU tracker gives each face an id that survives
short detector misses (`max_age` analysed frames), and each face's probabilities are smoothed with
an exponential moving average (`smoothing` = weight of the newest frame), so a label does not
flicker between frames. Frames that are not analysed reuse the last result when annotating.
Outputs: an annotated video (OpenCV VideoWriter, mp4v), a CSV with one row per face per analysed
frame and its companion JSON (per-face summary, see `nasfer.runtime.timeline`), and a timeline plot. No torch.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from ..atomic import staged_output
from ..config import option
from ..errors import DataError
from .faces import iou
from .options import RecognizerOptions, recognizer_kwargs
from .timeline import FaceSummary, Timeline, companion_json, plot_path

Rect = tuple[int, int, int, int]


@dataclass
class VideoConfig(RecognizerOptions):
    """`nasfer video` flags (the input path is the positional argument)."""

    path: Optional[str] = option(None, "video file to analyse")
    webcam: Optional[int] = option(None, "read camera N (e.g. 0) instead of a file; stop with Ctrl-C or --max-frames")
    out: Optional[str] = option(None, "annotated video to write (.mp4, mp4v codec)")
    csv: Optional[str] = option(None, "per-face timeline CSV to write (one row per face per analysed frame); "
                                      "a per-face summary goes to the same name with .json")
    plot: Optional[str] = option(None, "timeline plot to write (PNG: one panel per face, probabilities over time; "
                                       "needs pip install 'nasfer[plots]')")
    every: int = option(1, "analyse every K-th frame; the others reuse the last result (faster)")
    smoothing: float = option(0.5, "weight of the newest analysed frame in each face's moving average of "
                                   "probabilities (1: no smoothing)")
    iou: float = option(0.3, "overlap (IoU) that links a face to one in the previous analysed frame")
    max_age: int = option(5, "analysed frames a face may go undetected before its id is retired")
    max_frames: int = option(0, "stop after this many frames (0: all)")
    threads: int = option(0, "ONNX Runtime threads (0: all cores)")
    min_face: int = option(40, "smallest face looked for, in pixels of the original frame")
    progress: bool = option(True, "show progress on stderr (a bar on a terminal, a line every 10%% otherwise)")

    def validate(self) -> "VideoConfig":
        """Raise ValueError naming the first impossible setting; return self."""
        from ..validation import check, threads_check

        super().validate()
        check([(self.webcam is None or self.webcam >= 0, f"--webcam must be a camera number >= 0, got {self.webcam}"),
               (self.every >= 1, f"--every must be >= 1, got {self.every}"),
               (0.0 < self.smoothing <= 1.0, f"--smoothing must be within (0, 1], got {self.smoothing}"),
               (0.0 <= self.iou <= 1.0, f"--iou must be within 0..1, got {self.iou}"),
               (self.max_age >= 0, f"--max-age must be >= 0, got {self.max_age}"),
               (self.max_frames >= 0, f"--max-frames must be >= 0 (0: all), got {self.max_frames}"),
               threads_check(self.threads),
               (self.min_face >= 1, f"--min-face must be >= 1 pixel, got {self.min_face}"),
               *((value != "", f"{flag} needs a file name, got an empty one")
                 for flag, value in (("--out", self.out), ("--csv", self.csv), ("--plot", self.plot))),
               (self.csv != "-", "--csv -: nasfer video writes the timeline CSV and its .json summary beside it, "
                                 "so it needs a file name (standard output is for nasfer predict's --csv -)")])
        return self


# ------------------------------------------------------------------------------------------------ tracking
@dataclass
class Track:
    id: int
    box: Rect
    misses: int = 0


class IoUTracker:
    """Greedy IoU matching of this frame's boxes to the live tracks; unmatched boxes start new ids."""

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 5):
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.tracks: dict[int, Track] = {}
        self.next_id = 1

    def update(self, boxes: Sequence[Rect]) -> tuple[list[int], list[int]]:
        """(id per box, ids retired in this step)."""
        pairs = sorted(((iou(t.box, b), tid, j) for tid, t in self.tracks.items() for j, b in enumerate(boxes)),
                       reverse=True)
        ids: list[Optional[int]] = [None] * len(boxes)
        taken: set[int] = set()
        for score, tid, j in pairs:
            if score < self.iou_threshold:
                break
            if tid in taken or ids[j] is not None:
                continue
            ids[j] = tid
            taken.add(tid)
        for j, box in enumerate(boxes):
            if ids[j] is None:
                ids[j] = self.next_id
                self.tracks[self.next_id] = Track(self.next_id, tuple(box))  # type: ignore[arg-type]
                self.next_id += 1
            else:
                track = self.tracks[ids[j]]  # type: ignore[index]
                track.box, track.misses = tuple(box), 0  # type: ignore[assignment]
        retired = []
        for tid, track in list(self.tracks.items()):
            if tid not in taken and tid not in ids:
                track.misses += 1
                if track.misses > self.max_age:
                    retired.append(tid)
                    del self.tracks[tid]
        return [int(i) for i in ids], retired  # type: ignore[arg-type]


class Smoother:
    """Per-id exponential moving average of probability vectors."""

    def __init__(self, alpha: float = 0.5):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing must be within (0, 1], got {alpha}")
        self.alpha = alpha
        self.state: dict[int, np.ndarray] = {}

    def update(self, face_id: int, probs: np.ndarray) -> np.ndarray:
        prev = self.state.get(face_id)
        value = np.asarray(probs, np.float64) if prev is None else self.alpha * probs + (1 - self.alpha) * prev
        self.state[face_id] = value
        return value

    def forget(self, ids: Iterable[int]) -> None:
        for i in ids:
            self.state.pop(i, None)


# ------------------------------------------------------------------------------------------------ analysis
@dataclass
class FrameResult:
    """Faces of one frame. `analysed` is False for skipped frames (faces are the last analysed ones)."""

    index: int
    time_s: float
    analysed: bool
    faces: list = field(default_factory=list)  # nasfer.runtime.api.Face with smoothed scores
    ids: list[int] = field(default_factory=list)
    frame: Optional[np.ndarray] = field(default=None, repr=False)  # the input frame, as given


def analyse_frames(frames: Iterable[np.ndarray], recognizer: Any, *, color: str = "bgr", fps: float = 25.0,
                   every: int = 1, smoothing: float = 0.5, iou_threshold: float = 0.3,
                   max_age: int = 5) -> Iterator[FrameResult]:
    """One FrameResult per input frame (uint8 (H, W, 3), OpenCV's BGR by default)."""
    from .api import Face, load_image

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    tracker, smoother = IoUTracker(iou_threshold, max_age), Smoother(smoothing)
    last: FrameResult | None = None
    for index, frame in enumerate(frames):
        t = index / fps if fps > 0 else 0.0
        if index % every and last is not None:
            yield FrameResult(index, t, False, last.faces, last.ids, frame)
            continue
        raw = recognizer.detect_rgb(load_image(frame, color))
        ids, retired = tracker.update([f.box for f in raw])
        smoother.forget(retired)
        faces = []
        for face_id, f in zip(ids, raw):
            probs = smoother.update(face_id, np.array([f.scores[k] for k in recognizer.labels]))
            faces.append(Face.from_probs(f.box, probs, recognizer.labels, recognizer.threshold,
                                         f.detector_score, f.landmarks))
        last = FrameResult(index, t, True, faces, ids, frame)
        yield last


#: The timeline CSV's columns before the labels' probability columns.
TIMELINE_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "w", "h", "label", "confidence", "uncertain")


def timeline_header(labels: Sequence[str]) -> list[str]:
    """The columns of `timeline_rows`; a label named like a column ('label', 'x', ...) gets its probabilities in
    `score_<label>`, as in `nasfer predict --csv` (before: two columns of one name)."""
    from .outputs import score_columns

    return [*TIMELINE_COLUMNS, *score_columns(labels, TIMELINE_COLUMNS)]


def timeline_rows(result: FrameResult, labels: Sequence[str]) -> list[list[Any]]:
    """CSV rows (see `timeline_header`) of an analysed frame."""
    return [[result.index, round(result.time_s, 3), face_id, *face.box, face.label, round(face.confidence, 4),
             int(face.uncertain), *(round(face.scores[k], 4) for k in labels)]
            for face_id, face in zip(result.ids, result.faces)]


@dataclass
class VideoSummary:
    frames: int = 0
    analysed: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False
    faces: list[FaceSummary] = field(default_factory=list)
    out: Optional[str] = None
    csv: Optional[str] = None
    summary_json: Optional[str] = None
    plot: Optional[str] = None
    frames_announced: int = 0  # the file's frame count (OpenCV CAP_PROP_FRAME_COUNT); 0: unknown or a camera
    truncated: bool = False  # the file ended before frames_announced (and no --max-frames or Ctrl-C stopped it)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def video_outputs(cfg: VideoConfig) -> list[tuple[str, str]]:
    """The files `process_video(cfg)` writes, as `nasfer.runtime.outputs.check_outputs` takes them:
    --out, --csv, the per-face summary beside it (.json) and the --plot file (.png added without a suffix)."""
    outputs = [(f"--out {cfg.out}", cfg.out)] if cfg.out else []
    if cfg.csv:
        outputs += [(f"--csv {cfg.csv}", cfg.csv),
                    (f"the per-face summary {companion_json(cfg.csv)} (--csv's name with .json)",
                     str(companion_json(cfg.csv)))]
    if cfg.plot:
        outputs.append((f"--plot {plot_path(cfg.plot)}", str(plot_path(cfg.plot))))
    return outputs


def open_capture(path: Optional[str], webcam: Optional[int]):
    """cv2.VideoCapture of a file or camera; DataError when it cannot be opened."""
    import cv2

    if (path is None) == (webcam is None):
        raise ValueError("give a video file or --webcam N (one of them)")
    if path is not None and Path(path).is_dir():
        raise DataError(f"{path} is a folder: give a video file")
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # no backend WARN lines before our error
    try:
        cap = cv2.VideoCapture(int(webcam) if webcam is not None else str(path))
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        cap.release()
        raise DataError(f"cannot open {'camera ' + str(webcam) if webcam is not None else path} as a video")
    return cap


def _frames(cap, max_frames: int) -> Iterator[np.ndarray]:
    n = 0
    while not max_frames or n < max_frames:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        n += 1
        yield frame if frame.ndim == 3 else np.repeat(frame[:, :, None], 3, axis=2)


def process_video(cfg: VideoConfig, recognizer: Any = None) -> VideoSummary:
    """Analyse `cfg.path` or `cfg.webcam`; write `cfg.out` / `cfg.csv`; summary of every face seen.

    Ctrl-C stops early and still closes the outputs properly. ValueError, before anything is opened, for an
    impossible setting (`VideoConfig.validate`) or outputs that would overwrite the video or each other
    (`nasfer.runtime.outputs.check_outputs`). A file that ends before the frame count its container announces
    gives `summary.truncated` (also in the per-face summary JSON).
    """
    import cv2

    from .annotate import draw_faces
    from .outputs import check_outputs
    from ..progress import progress_bar

    cfg.validate()
    check_outputs(video_outputs(cfg), [cfg.path] if cfg.path is not None else [])
    if cfg.plot:
        _check_plot_format(cfg.plot)
    if recognizer is None:
        from .api import EmotionRecognizer

        recognizer = EmotionRecognizer(**recognizer_kwargs(cfg))
    cap = open_capture(cfg.path, cfg.webcam)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and math.isfinite(fps) and 0 < fps < 1000 else 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cfg.webcam is None else 0
    total = max(0, total)
    announced = total
    if cfg.max_frames:
        total = min(total, cfg.max_frames) if total > 0 else cfg.max_frames
    labels = list(recognizer.labels)
    summary = VideoSummary(fps=fps, out=cfg.out, csv=cfg.csv, plot=str(plot_path(cfg.plot)) if cfg.plot else None,
                           summary_json=str(companion_json(cfg.csv)) if cfg.csv else None,
                           frames_announced=announced)
    stats = Timeline(labels)
    writer = None
    with contextlib.ExitStack() as stack:  # the CSV replaces an older one when the loop ends (Ctrl-C included)
        csv_file = stack.enter_context(staged_output(cfg.csv, "w", newline="", encoding="utf-8")) if cfg.csv else None
        rows = csv.writer(csv_file) if csv_file else None
        if rows:
            rows.writerow(timeline_header(labels))
            csv_file.records = 0
        bar = progress_bar(total=total or None, unit="frames", desc="video", show=cfg.progress)
        start = time.perf_counter()
        results = analyse_frames(_frames(cap, cfg.max_frames), recognizer, color="bgr", fps=fps, every=cfg.every,
                                 smoothing=cfg.smoothing, iou_threshold=cfg.iou, max_age=cfg.max_age)
        try:
            for result in results:
                frame = result.frame
                summary.frames += 1
                if result.analysed:
                    summary.analysed += 1
                    stats.add(result)
                    if rows:
                        rows.writerows(timeline_rows(result, labels))
                        csv_file.records += 1
                if cfg.out:
                    if writer is None:
                        writer = _writer(cfg.out, fps, frame.shape[1], frame.shape[0])
                    writer.write(draw_faces(frame, result.faces, color="bgr", ids=result.ids))
                bar.update(1)
        except KeyboardInterrupt:
            summary.interrupted = True  # a finished run: the rows so far and the summary are written
        finally:
            bar.close()
            cap.release()
            if writer is not None:
                writer.release()
    summary.seconds = time.perf_counter() - start
    summary.truncated = (not summary.interrupted and summary.frames < announced
                         and not (cfg.max_frames and summary.frames >= cfg.max_frames))
    summary.faces = stats.summaries()
    source = cfg.path if cfg.path is not None else f"camera {cfg.webcam}"
    if summary.summary_json:
        stats.write_json(summary.summary_json, video=source, fps=round(fps, 3), frames=summary.frames,
                         frames_announced=summary.frames_announced, truncated=summary.truncated,
                         analysed=summary.analysed, every=cfg.every, smoothing=cfg.smoothing,
                         interrupted=summary.interrupted)
    if cfg.plot:
        stats.plot(cfg.plot, title=f"{source}: emotions per tracked face (smoothed)")
    return summary


def _check_plot_format(path: str) -> None:
    """Fail before the video is analysed, not after: DataError without matplotlib, ValueError for a --plot
    suffix matplotlib cannot write."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        from .timeline import PLOTS_HINT

        raise DataError(PLOTS_HINT) from None
    suffix = plot_path(path).suffix.lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise ValueError(f"--plot {path}: matplotlib cannot write .{suffix} files "
                         f"(use .png, or one of: {', '.join(sorted(formats))})")


def _writer(path: str, fps: float, width: int, height: int):
    import cv2

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise DataError(f"cannot write video {path} (OpenCV has no mp4v encoder for it; try a .mp4 name)")
    return writer


__all__ = ["VideoConfig", "VideoSummary", "FaceSummary", "FrameResult", "IoUTracker", "Smoother", "analyse_frames",
           "process_video", "timeline_header", "timeline_rows", "open_capture", "video_outputs"]
