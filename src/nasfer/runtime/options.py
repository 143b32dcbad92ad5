"""The flags every command that runs the recognizer shares (`nasfer predict`, `video`, `serve`).

`RecognizerOptions` declares them once; each command's config subclasses it, so the flags, their defaults
and their help read the same everywhere. `recognizer_kwargs` turns any such config into the
`nasfer.runtime.api.EmotionRecognizer` arguments it has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from ..config import option


@dataclass
class RecognizerOptions:
    """Which emotion model and face detector run, and when a face counts as uncertain."""

    model: Optional[str] = option(None, "ONNX emotion model with its card (.json) beside it, or a shipped model by "
                                        "name: default, fast (default: default)")
    detector: str = option("haar", "face detector: haar, yunet (needs --detector-model or `nasfer models fetch "
                                   "yunet`) or none (each image is one face)")
    detector_model: Optional[str] = option(None, "face-detector model file (YuNet's .onnx for --detector yunet)")
    threshold: float = option(0.25, "faces whose top probability is below this are marked uncertain (0..1)")
    explicit: tuple[str, ...] = option((), "fields given as flags (filled by the CLI's config.from_args)",
                                       cli=False, compare=False)

    def validate(self) -> "RecognizerOptions":
        """Raise ValueError naming the first impossible setting of these shared flags, or of a command's
        --min-face (predict, video) given with --detector none; return self."""
        from ..config import changed_flags
        from ..validation import check

        min_face = hasattr(self, "min_face") and ("min_face" in self.explicit  # typed, even at its default value
                                                  or bool(changed_flags(self, ["min_face"])))  # or set in code
        check([(0.0 <= self.threshold <= 1.0, f"--threshold must be within 0..1, got {self.threshold}"),
               (bool(self.detector.strip()), "--detector must not be empty"),
               (not (self.detector_model and self.detector == "none"),
                "--detector-model only applies with --detector yunet or haar (none detects nothing)"),
               (not (min_face and self.detector == "none"),
                "--min-face only applies with --detector yunet or haar (none detects nothing: each image is one face)")])
        return self


def check_max_faces_flag(value: int | None) -> None:
    """`runtime.api.check_max_faces` (the one face-limit rule) with its error naming the --max-faces flag."""
    from .api import check_max_faces

    try:
        check_max_faces(value)
    except ValueError as exc:
        raise ValueError(f"--max-faces: {exc}") from None


def recognizer_kwargs(cfg: Any) -> dict[str, Any]:
    """`EmotionRecognizer` keyword arguments from a command config: every field the two share, with 0 meaning
    "not set" (None) for `threads` and `max_faces`, and no detector settings for `--detector none`."""
    from .api import EmotionRecognizer

    wanted = {f.name for f in dataclasses.fields(EmotionRecognizer) if f.init}
    kwargs = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name in wanted}
    for name in ("threads", "max_faces"):
        if name in kwargs and not kwargs[name]:
            kwargs[name] = None
    if kwargs.get("detector") == "none":  # the flags' defaults; a changed one was refused by validate()
        kwargs.update({name: None for name in ("min_face", "detector_model") if name in kwargs})
    return kwargs


__all__ = ["RecognizerOptions", "recognizer_kwargs"]
