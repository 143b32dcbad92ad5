"""Follow the faces in a video (or a webcam) and record each one's emotion over time.

Each face keeps an id while it stays in view (IoU tracking); its probabilities are smoothed over
time so labels do not flicker. --every K analyses every K-th frame only (the others reuse the last
result), trading time resolution for speed.

--csv also writes a per-face summary beside the CSV (timeline.json: share of the analysed time under
each smoothed label, mean confidence, mean probabilities); --plot draws each face's probabilities over
time (needs pip install 'nasfer[plots]').

Outputs that would overwrite the video or each other (--out, --csv, its .json, --plot) stop the command
before any work (exit status 2). A file that ends before the frame count its container announces is
analysed to its last readable frame, with a warning on stderr ("read N of M frames: the file may be
truncated") and "truncated": true in the summary JSON; like `nasfer predict` with some unreadable
pictures, the exit status stays 0 then, and is 1 only when no frame could be read.

Examples:
  nasfer video clip.mp4 --out annotated.mp4 --csv timeline.csv --plot timeline.png
  nasfer video clip.mp4 --csv timeline.csv --every 3 --detector yunet --detector-model yunet.onnx
  nasfer video --webcam 0 --out webcam.mp4 --max-frames 300
"""

from __future__ import annotations

import argparse
import sys

from .. import config
from ..runtime.video import VideoConfig

NAME = "video"
HELP = "per-face emotion timeline of a video file or webcam (annotated video, CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=None, metavar="PATH", help="video file to analyse")
    config.add_arguments(parser, VideoConfig, exclude=("path",))


def run(args: argparse.Namespace) -> int:
    from ..interrupts import sigterm_as_sigint
    from ..runtime.video import process_video

    cfg = config.from_args(VideoConfig, args)
    with sigterm_as_sigint():  # `kill` ends the video like Ctrl-C: the frames read so far are written up
        summary = process_video(cfg)
    done = f"{summary.frames} frames ({summary.analysed} analysed) in {summary.seconds:.1f} s " \
           f"({summary.frames_per_second:.1f} frames/s)"
    print(done + (" - stopped early (Ctrl-C or SIGTERM)" if summary.interrupted else ""), file=sys.stderr)
    if not summary.frames and not summary.interrupted:  # before: "may be truncated" and "no face found" first
        source = f"camera {cfg.webcam}" if cfg.webcam is not None else cfg.path
        print(f"nasfer video: no frame could be read from {source}: is it a video, and complete?", file=sys.stderr)
        return 1
    if summary.truncated:
        print(f"nasfer video: warning: read {summary.frames} of {summary.frames_announced} frames: "
              "the file may be truncated", file=sys.stderr)
    if not summary.faces:
        print("no face found")
    for face in summary.faces:
        top = sorted(face.mean_scores.items(), key=lambda kv: -kv[1])[:3]
        shares = sorted(face.time_share.items(), key=lambda kv: -kv[1])[:2]
        print(f"face #{face.id}: {face.first_s:.2f}-{face.last_s:.2f} s, {face.frames} analysed frames; "
              f"{face.label} by mean probability (" + ", ".join(f"{k} {v:.0%}" for k, v in top) + "); share of time: "
              + ", ".join(f"{k} {v:.0%}" for k, v in shares if v > 0))
    for kind, path in (("annotated video", summary.out), ("timeline", summary.csv),
                       ("per-face summary", summary.summary_json), ("timeline plot", summary.plot)):
        if path:
            print(f"{kind}: {path}")
    return 0
