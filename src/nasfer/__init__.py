"""nasfer: facial expression recognition with architecture search and fast CPU inference.

Public API (lazy, so `import nasfer` costs nothing): EmotionRecognizer, Face, EMOTIONS.
"""

from .labels import EMOTIONS

__all__ = ["EMOTIONS", "EmotionRecognizer", "Face"]


def __getattr__(name: str):
    if name in ("EmotionRecognizer", "Face"):
        from .runtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'nasfer' has no attribute {name!r}")
