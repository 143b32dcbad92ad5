"""Fixtures of the search tests (local and Ray backends): generated faces and a latency stand-in."""

import numpy as np
import pytest
from fixtures_data import pattern_image

from nasfer.data import FaceDataset

__all__ = ["faces", "fake_latency"]


def fake_latency(name: str, kwargs: dict) -> dict:
    """Latency of a macro spec without timing it: grows with the stages' widths (ms per face)."""
    widths = sum(s["width"] for s in kwargs["spec"]["stages"])
    return {"ms_per_face_b1": widths / 100, "ms_per_face_b64": widths / 400, "params": widths * 100}


@pytest.fixture(scope="module")
def faces() -> FaceDataset:
    """210 learnable Training faces of 7 classes plus 14 PublicTest ones the search must never read."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 32)
    images = np.stack([pattern_image(int(label), rng) for label in labels])
    splits = np.array((["Training"] * 30 + ["PublicTest"] * 2) * 7)
    images[splits == "PublicTest"] = 255  # recognisable if they leaked in
    return FaceDataset(images=images, labels=labels, splits=splits,
                       sources=np.array([f"face{i}" for i in range(len(labels))]))
