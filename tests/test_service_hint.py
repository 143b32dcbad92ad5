"""The HTTP response carries the API's no-face hint (a face crop sent to a face detector)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from nasfer.runtime.api import EmotionRecognizer
from nasfer.service.app import create_app
from nasfer.service.config import ServeConfig


def png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    return buf.getvalue()


def test_a_face_crop_posted_to_the_service_gets_the_hint(tiny_onnx):
    """Before: `faces: []` and nothing to say why."""
    recognizer = EmotionRecognizer(tiny_onnx, threads=1)
    app = create_app(ServeConfig(model=str(tiny_onnx)), recognizer=recognizer)
    client = app.test_client()
    crop = client.post("/v1/emotions", data=png(np.full((48, 48), 128, np.uint8)), content_type="image/png")
    body = crop.get_json()
    assert crop.status_code == 200 and body["faces"] == [] and "detector=none" in body["hint"]
    photo = client.post("/v1/emotions", data=png(np.full((480, 640), 128, np.uint8)), content_type="image/png")
    assert photo.status_code == 200 and "hint" not in photo.get_json()
