"""The per-actor work of `nasfer predict --backend ray`: one EmotionRecognizer (one ONNX Runtime
engine) per actor, turning batches of sources into the local backend's records.

`PredictWorker` is a plain class (Ray Data instantiates it once per actor of the pool), so it runs
and is tested without Ray too. Records come from `nasfer.commands.predict.analyse`, the local
backend's own function, so both backends write the same records; anything that goes wrong with one
image (unreadable, corrupt, an unexpected exception) becomes that image's error record, never a lost
image or a failed batch.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Columns of a batch given to a worker, and of the batches it returns.
IN_COLUMNS = ("index", "location", "shown", "missing", "filesystem")
OUT_COLUMNS = ("index", "record")


@dataclass(frozen=True)
class ModelFiles:
    """Model files shipped to the actors through Ray's object store, so cluster nodes need no copy:
    file name -> bytes for the .onnx and its card (.json), and the face detector's file if any."""

    model: dict[str, bytes]
    detector: dict[str, bytes]

    @classmethod
    def read(cls, model: str | None, detector_model: str | None) -> "ModelFiles":
        """Resolve `model` as every command does (shipped name or path) and read it with its card.

        ModelError / FileNotFoundError name the missing file."""
        from ..runtime.engine import card_path, read_card
        from ..weights import resolve_model

        path = resolve_model(model)
        if path.suffix != ".onnx":
            raise ValueError(f"{path}: --backend ray needs an exported .onnx model (nasfer export)")
        read_card(path)  # a broken or mismatched card fails here, on the driver, with its own message
        files = {path.name: path.read_bytes(), card_path(path).name: card_path(path).read_bytes()}
        detector: dict[str, bytes] = {}
        if detector_model:
            det = Path(detector_model)
            if not det.is_file():
                raise FileNotFoundError(f"--detector-model {detector_model}: no such file")
            detector = {det.name: det.read_bytes()}
        return cls(files, detector)

    def write(self, folder: Path) -> tuple[str, str | None]:
        """Write the files into `folder`; return (model path, detector path or None)."""
        for name, data in {**self.model, **self.detector}.items():
            (folder / name).write_bytes(data)
        model = next(folder / name for name in self.model if name.endswith(".onnx"))
        detector = next((folder / name for name in self.detector), None)
        return str(model), None if detector is None else str(detector)


class PredictWorker:
    """Callable over a batch {column: array} with IN_COLUMNS; returns {"index", "record" (JSON text)}."""

    def __init__(self, cfg: Any, files: ModelFiles):
        from ..runtime.api import EmotionRecognizer
        from ..runtime.options import recognizer_kwargs

        self._dir = tempfile.TemporaryDirectory(prefix="nasfer-actor-")
        model, detector_model = files.write(Path(self._dir.name))
        self.cfg = dataclasses.replace(cfg, model=model, detector_model=detector_model, annotate=None,
                                       strict=False)
        self.recognizer = EmotionRecognizer(**recognizer_kwargs(self.cfg))
        _limit_opencv_threads(max(1, self.cfg.threads))
        self._filesystems: dict[str, Any] = {}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = [self.record(str(loc), str(shown), bool(missing), str(fs)) for loc, shown, missing, fs
                   in zip(batch["location"], batch["shown"], batch["missing"], batch["filesystem"])]
        return {"index": np.asarray(batch["index"], dtype=np.int64),
                "record": np.asarray([json.dumps(r, ensure_ascii=False) for r in records], dtype=object)}

    def record(self, location: str, shown: str, missing: bool, filesystem: str = "") -> dict[str, Any]:
        """The local backend's record for one image; an error record whatever goes wrong."""
        from ..commands.predict import Item, analyse

        try:
            image: Any = Path(location)
            if filesystem and not missing:
                image = self._fetch(filesystem, location)
                missing = image is None
            # analyse() hands Item.path to load_image, which takes bytes as well as paths.
            item = Item(path=image, shown=shown, relative=Path(Path(shown).name), missing=missing)
            (record,) = list(analyse([item], self.recognizer, self.cfg))
            return record
        except Exception as exc:  # one bad image must not fail its batch
            return {"file": shown, "error": f"{shown}: {type(exc).__name__}: {str(exc).strip()[:300]}"}

    def _fetch(self, filesystem: str, path: str) -> bytes | None:
        """The bytes of `path` in the pyarrow filesystem of URI `filesystem`; None if there is no such
        file (other OSErrors propagate). Filesystems are opened once per actor."""
        import pyarrow.fs as pafs

        from .sources import open_filesystem

        if filesystem not in self._filesystems:
            self._filesystems[filesystem] = open_filesystem(filesystem)[0]
        fs = self._filesystems[filesystem]
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with fs.open_input_stream(path) as stream:
            return stream.read()


def _limit_opencv_threads(n: int) -> None:
    """Actors share a node's cores: OpenCV's own pool gets the actor's threads, not all cores."""
    try:
        import cv2

        cv2.setNumThreads(n)
    except Exception:  # pragma: no cover - OpenCV without a thread pool
        pass


__all__ = ["IN_COLUMNS", "ModelFiles", "OUT_COLUMNS", "PredictWorker"]
