"""Find the faces in pictures and print the emotion of each one.

Folders are searched recursively for images; `@LIST` reads one path per line from the file LIST. A file that cannot be read gives an error record and
the run goes on; the exit status is 1 only when no picture could be read (--strict: stop with
status 2 at the first unreadable file). An output (--csv, an --annotate copy) that would replace an
input or another output, or an --annotate copy that would replace a file which is not an earlier annotated
copy, stops the run before any work (status 2); --annotate copies keep the picture's name, with .png added
to names of formats not written as such (a.gif -> a.gif.png). A --csv file is
replaced only when the run ends: a run stopped by an error or Ctrl-C leaves it as it was and the rows
written so far in NAME.partial.

Output: a table (default) or one JSON object per picture (--json):
  {"file": ..., "image": {"width": W, "height": H}, "faces": [{"box": [x, y, w, h], "detector_score": ...,
   "landmarks": ..., "scores": {label: p}, "label": ..., "confidence": ..., "uncertain": ...}]}
  {"file": ..., "image": ..., "faces": [], "hint": "no face found, but this small image ... looks like a face crop ..."}
  {"file": ..., "error": "why it could not be read"}

Faces down to --min-face pixels (default 40) are looked for at every image size. The model must be an
exported .onnx with its card (`nasfer export` makes one from a training checkpoint).

Examples:
  nasfer predict photo.jpg
  nasfer predict photos/ --json > results.jsonl
  nasfer predict photos/ --csv results.csv --annotate annotated/
  nasfer predict crops/ --detector none                 # inputs are face crops already
  nasfer predict group.jpg --detector yunet --detector-model face_detection_yunet_2023mar.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .. import bulk, config
from ..config import option
from ..runtime.options import RecognizerOptions, recognizer_kwargs

NAME = "predict"
HELP = "emotions of the faces in images or folders (table, JSON lines, CSV, annotated copies)"

#: Suffixes picked up when searching folders (explicitly named files are always tried).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif"}
#: Show a progress bar from this many files on.
PROGRESS_FROM = 10


@dataclass
class PredictConfig(RecognizerOptions):
    inputs: list[str] = option([], "image files and/or folders (searched recursively)")
    json: bool = option(False, "print one JSON object per image instead of a table")
    csv: Optional[str] = option(None, "also write one CSV row per face (and per unreadable file) to this file "
                                      "('-': to standard output, instead of the table)")
    annotate: Optional[str] = option(None, "write copies of the images with the faces drawn into this folder, under "
                                           "their names (a named folder's images under the folder's name; names not "
                                           "ending .jpg/.jpeg/.png/.webp get .png added: a.gif -> a.gif.png). "
                                           "A copy that would replace an input, another copy or a file that is "
                                           "not an earlier annotated copy stops the run before any work")
    max_faces: int = option(0, "keep at most this many faces per image, largest first (0: all)")
    min_face: int = option(40, "smallest face looked for, in pixels of the original image")
    threads: int = option(0, "ONNX Runtime threads (0: all cores)")
    strict: bool = option(False, "stop at the first file that cannot be read (exit status 2)")

    def validate(self) -> "PredictConfig":
        """Raise ValueError naming the first impossible setting; return self."""
        from ..runtime.options import check_max_faces_flag
        from ..validation import check, threads_check

        super().validate()
        check([(self.min_face >= 1, f"--min-face must be >= 1 pixel, got {self.min_face}"), threads_check(self.threads),
               *((value != "", f"{flag} needs a name, got an empty one")
                 for flag, value in (("--csv", self.csv), ("--annotate", self.annotate)))])
        check_max_faces_flag(self.max_faces)
        return self


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE|DIR|@LIST",
                        help="image files, folders (recursive) and/or @LIST files of paths, one per line")
    config.add_arguments(parser, PredictConfig, exclude=("inputs",))
    bulk.add_arguments(parser)  # --backend ray and its flags (nasfer.bulk; Ray is imported only when used)


@dataclass
class Item:
    """One input file: its path, how to show it, and where its annotated copy goes (relative). `missing`:
    nothing readable is there, for the reason `problem` (its error record's message)."""

    path: Path
    shown: str
    relative: Path
    missing: bool = False
    problem: str = "no such file or folder"


def list_files(inputs: list[str]) -> list[str]:
    """The local list files among `inputs` (`@LIST`), which count as inputs an output must not replace."""
    from ..bulk.sources import is_list, is_uri

    return [raw[1:] for raw in inputs if is_list(raw) and not is_uri(raw[1:])]


def collect(inputs: list[str]) -> list[Item]:
    """Files named directly, the images inside named folders (sorted, recursive, no hidden files), and the
    entries of `@LIST` files (one path per line, relative ones from the current folder; blank lines and `#`
    comments skipped), in order; a picture whose name starts with @ is named `./@name.jpg`. A URI
    (`s3://...`) gives an error record: only `--backend ray` reads them. NasferError for an unreadable
    list or a list naming another list."""
    from ..bulk.sources import expand_lists, is_uri

    items: list[Item] = []
    for raw in expand_lists(inputs):
        if is_uri(raw):
            items.append(Item(Path(raw), raw, Path(raw.rsplit("/", 1)[-1] or "uri"), missing=True,
                              problem="a URI: read it with --backend ray (pip install 'nasfer[distributed]')"))
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            items += [Item(p, str(p), Path(path.resolve().name or "root") / p.relative_to(path)) for p in found]
        else:
            items.append(Item(path, raw, Path(path.name), missing=not path.exists()))
    return items


def annotated_path(root: Path, item: Item) -> Path:
    """Where `--annotate root` writes `item`'s copy: root/relative, with ".png" added to names of formats outside
    `runtime.annotate.ANNOTATED_SUFFIXES` (a.gif -> a.gif.png), so a.gif, a.png and a.tiff of one folder get
    three copies."""
    from ..runtime.annotate import ANNOTATED_SUFFIXES

    rel = item.relative
    return root / (rel if rel.suffix.lower() in ANNOTATED_SUFFIXES else rel.with_name(rel.name + ".png"))


def check_annotate_targets(outputs: list[tuple[str, Path]]) -> None:
    """ValueError (one line) when an annotated copy would replace a file that is not an earlier annotated copy
    (`runtime.annotate.is_annotated_copy`): a user's own picture in the --annotate folder is never lost, while
    running the same command again replaces its own copies."""
    from ..runtime.annotate import is_annotated_copy

    for what, target in outputs:
        if what.startswith("--annotate ") and target.is_file() and not is_annotated_copy(target):
            raise ValueError(f"{what}: {target} exists and is not an annotated copy nasfer wrote; move it or "
                             "choose another --annotate folder (nothing was done)")


def planned_outputs(items: list[Item], cfg: "PredictConfig") -> list[tuple[str, Path]]:
    """The files a run will write, as `nasfer.runtime.outputs.check_outputs` takes them: --csv (not '-') and one
    annotated copy per picture (a picture named twice counts once)."""
    from ..runtime.outputs import file_key

    outputs: list[tuple[str, Path]] = [(f"--csv {cfg.csv}", Path(cfg.csv))] if cfg.csv and cfg.csv != "-" else []
    if cfg.annotate:
        seen = set()
        for item in items:
            target = annotated_path(Path(cfg.annotate), item)
            key = (file_key(item.path), file_key(target))
            if not item.missing and key not in seen:
                seen.add(key)
                outputs.append((f"--annotate copy {target} of {item.shown}", target))
    return outputs


def analyse(items: list[Item], recognizer: Any, cfg: PredictConfig) -> Iterator[dict[str, Any]]:
    """One record per item: {"file", "image", "faces"} or {"file", "error"}; --strict raises instead."""
    from ..runtime.annotate import draw_faces, save_annotated
    from ..runtime.api import load_image
    from ..errors import ImageError

    for item in items:
        try:
            if item.missing:
                raise ImageError(f"{item.shown}: {item.problem}")
            rgb = load_image(item.path, max_pixels=recognizer.max_pixels)
            faces = recognizer.detect_rgb(rgb)
        except ImageError as exc:
            if cfg.strict:
                raise
            message = str(exc)
            yield {"file": item.shown, "error": message if message.startswith(item.shown) else
                   f"{item.shown}: {message}"}
            continue
        if cfg.annotate:
            save_annotated(draw_faces(rgb, faces), annotated_path(Path(cfg.annotate), item))
        record = {"file": item.shown, "image": {"width": int(rgb.shape[1]), "height": int(rgb.shape[0])},
                  "faces": [f.to_dict() for f in faces]}
        if getattr(faces, "hint", None):
            record["hint"] = faces.hint
        yield record


class Table:
    """Human-readable rows, streamed: file, face number, box, emotion, confidence."""

    def __init__(self, items: list[Item]):
        self.width = min(60, max([len("FILE")] + [len(i.shown) for i in items]))

    def header(self) -> str:
        return f"{'FILE':<{self.width}}  {'FACE':>4}  {'BOX (x,y,w,h)':<20}  {'EMOTION':<10}  CONFIDENCE"

    def rows(self, record: dict[str, Any]) -> list[str]:
        name = "".join("?" if not ch.isprintable() else ch for ch in record["file"])  # a newline would split the row
        name = name if len(name) <= self.width else "..." + name[-(self.width - 3):]
        if "error" in record:
            return [f"{name:<{self.width}}  {'-':>4}  error: {record['error']}"]
        if not record["faces"]:
            hint = "  (looks like a face crop: classify it with --detector none)" if record.get("hint") else ""
            return [f"{name:<{self.width}}  {'-':>4}  no face found{hint}"]
        lines = []
        for n, face in enumerate(record["faces"], 1):
            box = ",".join(str(v) for v in face["box"])
            flag = "  (uncertain)" if face["uncertain"] else ""
            # an uncertain face's confidence is below the threshold: rounded down, 0.2499 never shows as 0.25
            shown = math.floor(face["confidence"] * 100) / 100 if face["uncertain"] else face["confidence"]
            lines.append(f"{name:<{self.width}}  {n:>4}  {box:<20}  {face['label']:<10}  {shown:.2f}{flag}")
        return lines


#: The CSV columns around the labels' probability columns.
FACE_COLUMNS, LAST_COLUMN = ("file", "face", "x", "y", "w", "h", "label", "confidence", "uncertain"), "error"


def csv_header(labels: list[str]) -> list[str]:
    """The CSV columns of `csv_rows`: one row per face, the labels' probabilities (each under the label's name, or
    `score_<label>` where that is another column's, `nasfer.runtime.outputs.score_columns`), then an error column."""
    from ..runtime.outputs import score_columns

    return [*FACE_COLUMNS, *score_columns(labels, (*FACE_COLUMNS, LAST_COLUMN)), LAST_COLUMN]


def csv_rows(record: dict[str, Any], labels: list[str]) -> list[list[Any]]:
    if "error" in record:
        return [[record["file"], "", "", "", "", "", "", "", "", *([""] * len(labels)), record["error"]]]
    if not record["faces"]:
        return [[record["file"], 0, "", "", "", "", "", "", "", *([""] * len(labels)), ""]]
    return [[record["file"], n, *face["box"], face["label"], face["confidence"], int(face["uncertain"]),
             *(face["scores"].get(k, "") for k in labels), ""] for n, face in enumerate(record["faces"], 1)]


@dataclass
class Counts:
    """What a predict run saw: pictures read, faces found, pictures that could not be read."""

    read: int = 0
    faces: int = 0
    errors: int = 0


def emit_records(records: Iterable[dict[str, Any]], items: list, labels: list[str], cfg: "PredictConfig",
                 sinks: Iterable[Any] = ()) -> Counts:
    """Print each record (table rows, or JSON lines with --json), write its --csv rows and give it to `sinks`,
    with a progress bar on a terminal from PROGRESS_FROM pictures on; the one output loop of the local and
    the Ray backends. `items`: the pictures (anything with `.shown`), for the table's width and the bar.

    A --csv file replaces an existing one only when every record is written: a run stopped by an error or
    Ctrl-C leaves it as it was and its rows in `<name>.partial` (`nasfer.atomic.staged_output`)."""
    from ..atomic import staged_output
    from ..progress import progress_bar

    to_stdout = cfg.csv == "-"
    if to_stdout and cfg.json:
        raise ValueError("--csv - and --json both write to standard output: choose one")
    table = None if cfg.json or to_stdout else Table(items)
    counts = Counts()
    with contextlib.ExitStack() as stack:
        staged = stack.enter_context(staged_output(cfg.csv, "w", newline="", encoding="utf-8")) \
            if cfg.csv and not to_stdout else None
        writer = csv.writer(sys.stdout if to_stdout else staged) if cfg.csv else None
        bar = stack.enter_context(progress_bar(total=len(items), desc="predict", unit="img",
                                               show=len(items) >= PROGRESS_FROM))
        if writer:
            writer.writerow(csv_header(labels))
            if staged is not None:
                staged.records = 0  # a stop before the first record leaves no header-only .partial
        if table:
            bar.write(table.header(), file=sys.stdout)
        for record in records:
            bar.update(1)
            if "error" in record:
                counts.errors += 1
            else:
                counts.read += 1
                counts.faces += len(record["faces"])
            lines = [] if to_stdout else [json.dumps(record, ensure_ascii=False)] if table is None else table.rows(record)
            for line in lines:
                bar.write(line, file=sys.stdout)
            if writer:
                writer.writerows(csv_rows(record, labels))
                if staged is not None:
                    staged.records += 1
            for sink in sinks:
                sink.write(record)
    return counts


def report(counts: Counts, pictures: int, where: str = "") -> int:
    """The closing line on stderr (several pictures, an error, or `where` the records went) and the exit status:
    1 when no picture could be read."""
    if pictures > 1 or counts.errors or where:
        print(f"nasfer predict: {counts.read} image(s) read, {counts.faces} face(s) found, {counts.errors} unreadable"
              + (f"; records in {where}" if where else ""), file=sys.stderr)
    if not counts.read:
        print("nasfer predict: no image could be read", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from ..interrupts import sigterm_as_sigint
    from ..runtime.api import EmotionRecognizer
    from ..runtime.outputs import check_outputs
    from ..validation import check_output_folder

    if bulk.requested(args):
        return bulk.run(args)
    cfg: PredictConfig = config.from_args(PredictConfig, args).validate()
    items = collect(cfg.inputs)
    if not items:
        print(f"nasfer predict: no images found in {', '.join(cfg.inputs)}", file=sys.stderr)
        return 1
    if cfg.annotate:
        check_output_folder(cfg.annotate, "the folder of annotated copies", flag="--annotate")
    outputs = planned_outputs(items, cfg)
    check_outputs(outputs, [item.path for item in items if not item.missing]
                  + [Path(name) for name in list_files(cfg.inputs)])  # an @LIST file is an input too
    check_annotate_targets(outputs)
    recognizer = EmotionRecognizer(**recognizer_kwargs(cfg))
    with sigterm_as_sigint():  # `kill`: like Ctrl-C, --csv keeps its old file and the rows go to .partial
        counts = emit_records(analyse(items, recognizer, cfg), items, list(recognizer.labels), cfg)
    return report(counts, len(items))
