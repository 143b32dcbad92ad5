"""List the registered architectures and face detectors, or download a detector's model once.

`fetch` is the only thing in nasfer that goes to the network, and only when asked: the file is
streamed to a temporary name beside its destination, its SHA-256 checked, then renamed into place
(an interrupted or tampered download never leaves a usable-looking file). It lands in the user
cache ($XDG_CACHE_HOME/nasfer or ~/.cache/nasfer), where `--detector yunet` finds it.

Examples:
  nasfer models list          (or just `nasfer models`)
  nasfer models fetch yunet
  nasfer models fetch yunet --url https://mirror.example/face_detection_yunet_2023mar.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .. import config
from ..config import option

NAME = "models"
HELP = "list architectures and face detectors; fetch the YuNet detector model"

#: Refuse downloads larger than this (a detector model is well under 1 MB; a wrong URL may be huge).
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str
    destination: Callable[[], Path]
    about: str


def _yunet_path() -> Path:
    from ..runtime.faces import yunet_cache_path

    return yunet_cache_path()


#: name -> what `nasfer models fetch NAME` downloads.
DOWNLOADS: dict[str, Download] = {
    "yunet": Download(
        url="https://media.githubusercontent.com/media/opencv/opencv_zoo/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
        sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        destination=_yunet_path,
        about="YuNet face detector (OpenCV model zoo, MIT licence, 2023mar)"),
}


@dataclass
class FetchConfig:
    name: str = option("yunet", "model to download")
    url: Optional[str] = option(None, "download from this URL instead (a mirror); --sha256 must match it")
    sha256: Optional[str] = option(None, "expected SHA-256 of the file (default: the pinned one)")
    force: bool = option(False, "download again even if a verified copy is present")
    timeout: float = option(60.0, "network timeout in seconds")

    def validate(self) -> "FetchConfig":
        """Raise ValueError naming the first impossible setting; return self."""
        from ..validation import check, finite

        check([(self.timeout > 0 and finite(self.timeout), f"--timeout must be a number of seconds > 0, "
                                                            f"got {self.timeout}"),
               (self.sha256 is None or re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256) is not None,
                f"--sha256 must be 64 hexadecimal digits, got {self.sha256!r}")])
        return self


@dataclass
class ListConfig:
    json: bool = option(False, "print JSON instead of text")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")  # none: list
    lister = sub.add_parser("list", help="registered architectures and face detectors")
    config.add_arguments(lister, ListConfig)
    fetch = sub.add_parser("fetch", help="download a detector model into the user cache (SHA-256 checked)")
    fetch.add_argument("name", choices=sorted(DOWNLOADS), help="what to download")
    config.add_arguments(fetch, FetchConfig, exclude=("name",))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, sha256: str, destination: Path, timeout: float = 60.0, progress: bool = True) -> Path:
    """Stream `url` to `destination` atomically if its SHA-256 is `sha256` (ModelError otherwise)."""
    import urllib.error
    import urllib.request

    from ..errors import ModelError
    from ..progress import progress_bar

    if not url.lower().startswith(("https://", "http://")):
        raise ValueError(f"--url must be an http(s) URL, got {url!r}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    tmp = Path(tmp_name)
    digest, size = hashlib.sha256(), 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "nasfer"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", desc=destination.name, show=progress) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise ModelError(f"{url}: larger than {MAX_BYTES >> 20} MB; not a detector model")
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        if got != sha256.lower():
            raise ModelError(f"{url}: SHA-256 mismatch (expected {sha256.lower()}, got {got}); nothing was saved")
        os.replace(tmp, destination)
    except urllib.error.HTTPError as exc:
        raise ModelError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ModelError(f"download of {url} failed: {exc.reason}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise ModelError(f"download of {url} failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return destination


def fetch(cfg: FetchConfig, progress: bool = True) -> tuple[Path, bool]:
    """(path of the verified model, whether it was downloaded now)."""
    spec = DOWNLOADS[cfg.name]
    expected = (cfg.sha256 or spec.sha256).lower()
    destination = spec.destination()
    if not cfg.force and destination.is_file() and sha256_of(destination) == expected:
        return destination, False
    return download(cfg.url or spec.url, expected, destination, cfg.timeout, progress), True


def listing() -> dict:
    """Architectures (needs torch) and detectors with where their model files are."""
    from ..runtime.faces import DETECTOR_HELP, yunet_cache_path

    try:
        from ..models import list_models

        # `ensemble` is registered (checkpoints of `nasfer ensemble` load through it) but is not trained
        architectures: list[str] | str = [name for name in list_models() if name != "ensemble"]
    except ImportError as exc:
        architectures = f"unavailable here ({exc.name or exc} is not installed; pip install 'nasfer[train]')"
    yunet = yunet_cache_path()
    detectors = {name: {"about": about} for name, about in DETECTOR_HELP.items()}
    detectors["yunet"]["model"] = str(yunet) if yunet.is_file() else None
    return {"architectures": architectures, "detectors": detectors}


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        cfg = config.from_args(FetchConfig, args).validate()
        path, fresh = fetch(cfg)
        print(f"{path}: {'downloaded and verified' if fresh else 'already present and verified'} "
              f"({DOWNLOADS[cfg.name].about})")
        return 0
    info = listing()
    if args.action == "list" and config.from_args(ListConfig, args).json:  # `nasfer models` alone lists too
        print(json.dumps(info, indent=2))
        return 0
    archs = info["architectures"]
    print("architectures (nasfer train --arch NAME):")
    print("  " + (", ".join(archs) if isinstance(archs, list) else archs))
    print("face detectors (--detector NAME):")
    for name, d in info["detectors"].items():
        print(f"  {name:<6} {d['about']}")
        if name == "yunet":
            print(f"         model: {d['model'] or 'not downloaded (nasfer models fetch yunet)'}")
    return 0
