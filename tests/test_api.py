"""The Python API: every input type, EXIF orientation, bad images, thresholds, Face.to_dict."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest

from nasfer.runtime.api import EmotionRecognizer, Face, load_image
from nasfer.errors import ImageError
from nasfer.runtime.faces import Box
from nasfer.labels import EMOTIONS


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data
    return data.astronaut()


@pytest.fixture(scope="module")
def haar(tiny_onnx):
    return EmotionRecognizer(tiny_onnx, threads=1)


@pytest.fixture(scope="module")
def whole(tiny_onnx):
    return EmotionRecognizer(tiny_onnx, detector="none", threads=1)


def encode(rgb: np.ndarray, fmt: str = "PNG", exif_orientation: int | None = None, **kw) -> bytes:
    from PIL import Image

    img = Image.fromarray(rgb)
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kw["exif"] = exif.tobytes()
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_every_input_type_gives_the_same_faces(haar, astronaut, tmp_path):
    from PIL import Image

    png = encode(astronaut)
    path = tmp_path / "a.png"
    path.write_bytes(png)
    inputs = {
        "str path": (str(path), "rgb"), "Path": (path, "rgb"), "bytes": (png, "rgb"),
        "bytearray": (bytearray(png), "rgb"), "PIL": (Image.open(io.BytesIO(png)), "rgb"),
        "rgb array": (astronaut, "rgb"), "bgr array": (np.ascontiguousarray(astronaut[:, :, ::-1]), "bgr"),
        "rgba array": (np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)]), "rgb"),
    }
    results = {name: haar.detect(image, color=color) for name, (image, color) in inputs.items()}
    reference = results["rgb array"]
    assert len(reference) == 1 and Box(*reference[0].box).iou(Box(177, 67, 93, 93)) > 0.6
    for name, faces in results.items():
        assert [f.box for f in faces] == [reference[0].box], name
        assert faces[0].scores == pytest.approx(reference[0].scores, abs=1e-6), name


def test_load_image_colour_handling():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255  # red
    assert load_image(rgb)[0, 0].tolist() == [255, 0, 0]
    assert load_image(rgb, color="bgr")[0, 0].tolist() == [0, 0, 255]
    gray = np.full((4, 6), 7, np.uint8)
    assert load_image(gray).shape == (4, 6, 3) and load_image(gray[:, :, None]).max() == 7
    transparent = encode(np.zeros((3, 3, 4), np.uint8))  # fully transparent -> white, like a browser
    assert load_image(transparent).min() == 255
    sixteen = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.full((5, 5), 65535, np.uint16)).save(sixteen, format="PNG")
    assert load_image(sixteen.getvalue()).min() == 255  # scaled to 8 bits, not clipped or wrapped
    with pytest.raises(ValueError):
        load_image(rgb, color="hsv")


@pytest.mark.parametrize("orientation, undo", [(6, 1), (8, -1), (3, 2)])
def test_exif_orientation_is_honoured(haar, astronaut, orientation, undo):
    """A phone stores the sensor's pixels and an EXIF tag saying how to turn them: boxes follow the tag."""
    stored = np.ascontiguousarray(np.rot90(astronaut, undo))  # what display turns back upright
    data = encode(stored, "JPEG", exif_orientation=orientation, quality=95)
    upright = load_image(data)
    assert upright.shape == astronaut.shape
    assert np.abs(upright.astype(int) - astronaut).mean() < 4
    (face,) = haar.detect(data)
    assert Box(*face.box).iou(Box(177, 67, 93, 93)) > 0.6


def _png_with_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims width x height (a decompression bomb's header)."""
    png = bytearray(encode(np.zeros((1, 1, 3), np.uint8)))
    ihdr = png[12:29]
    ihdr[4:12] = struct.pack(">II", width, height)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(png)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: b"", "empty"),
    (lambda tmp: b"definitely not an image", "not an image format"),
    (lambda tmp: encode(np.zeros((64, 64, 3), np.uint8), "JPEG")[:300], "truncated or corrupt"),
    (lambda tmp: _png_with_size(60000, 60000), "too many pixels"),
    (lambda tmp: _png_with_size(20000, 20000), "too many pixels"),
    (lambda tmp: tmp / "missing.jpg", "no such file"),
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: np.zeros((0, 10, 3), np.uint8), "empty"),
    (lambda tmp: np.zeros((4, 4, 3), np.float32), "uint8"),
    (lambda tmp: np.zeros((4, 4, 5), np.uint8), "shape"),  # (H, W, 2) is gray + alpha, accepted
    (lambda tmp: 42, "cannot use a int"),
])
def test_bad_images_are_image_errors(make, message, tmp_path, haar):
    image = make(tmp_path)
    with pytest.raises(ImageError, match=message):
        load_image(image)
    with pytest.raises(ImageError, match=message):
        haar.detect(image)


def test_pixel_limit_is_configurable(tiny_onnx):
    small = EmotionRecognizer(tiny_onnx, detector="none", max_pixels=100)
    with pytest.raises(ImageError, match="too many pixels"):
        small.detect(np.zeros((11, 10, 3), np.uint8))
    assert len(small.detect(np.zeros((10, 10, 3), np.uint8))) == 1


def test_face_record_threshold_and_to_dict(tiny_onnx, whole):
    img = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    (face,) = whole.detect(img)
    assert isinstance(face, Face) and face.box == (0, 0, 48, 48)
    assert set(face.scores) == set(EMOTIONS) and sum(face.scores.values()) == pytest.approx(1, abs=1e-5)
    assert face.label == max(face.scores, key=face.scores.get) and face.confidence == max(face.scores.values())
    assert face.confidence < 0.25 and face.uncertain  # a random model is never sure
    assert not EmotionRecognizer(tiny_onnx, detector="none", threshold=0.1).detect(img)[0].uncertain
    d = face.to_dict()
    assert list(d) == ["box", "detector_score", "landmarks", "scores", "label", "confidence", "uncertain"]
    assert d["box"] == [0, 0, 48, 48] and d["detector_score"] is None and d["landmarks"] is None
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ValueError):
        EmotionRecognizer(tiny_onnx, threshold=1.5)


def test_yunet_faces_carry_score_and_landmarks(tiny_onnx, yunet_onnx, astronaut):
    rec = EmotionRecognizer(tiny_onnx, detector="yunet", detector_model=yunet_onnx, threads=1)
    (face,) = rec.detect(astronaut)
    d = face.to_dict()
    assert 0.5 < d["detector_score"] <= 1 and len(d["landmarks"]) == 5 and len(d["landmarks"][0]) == 2


class Boxes:
    """A stand-in detector returning fixed boxes."""

    def __init__(self, *boxes):
        self.boxes = list(boxes)

    def detect(self, image):
        return list(self.boxes)


def test_max_faces_keeps_the_largest_and_boxes_stay_inside(tiny_onnx):
    det = Boxes(Box(0, 0, 10, 10), Box(50, 50, 40, 40), Box(-20, -10, 60, 50), Box(90, 80, 40, 40))
    rec = EmotionRecognizer(tiny_onnx, detector=det, max_faces=2)
    faces = rec.detect(np.zeros((100, 120, 3), np.uint8))
    assert [f.box for f in faces] == [(0, 0, 40, 40), (50, 50, 40, 40)]
    for f in EmotionRecognizer(tiny_onnx, detector=det).detect(np.zeros((100, 120, 3), np.uint8)):
        x, y, w, h = f.box
        assert 0 <= x and 0 <= y and x + w <= 120 and y + h <= 100


def test_classify_takes_arrays_and_lists_of_any_size(whole):
    crops = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    probs = whole.classify(crops)
    assert probs.shape == (3, 7)
    mixed = [crops[0], np.repeat(crops[1][:, :, None], 3, axis=2),
             np.kron(crops[2], np.ones((2, 2), np.uint8))]  # gray, RGB, 96x96
    np.testing.assert_allclose(whole.classify(mixed)[:2], probs[:2], atol=1e-6)
    assert whole.classify(mixed).shape == (3, 7) and whole.classify([]).shape == (0, 7)
    assert whole.labels == EMOTIONS and whole.card["name"] == "tiny"


def test_top_level_package_exports_the_api():
    import nasfer

    assert nasfer.EmotionRecognizer is EmotionRecognizer and nasfer.Face is Face


def test_annotation_draws_boxes_labels_and_bars_in_the_emotion_colour(whole):
    from nasfer.runtime.annotate import EMOTION_COLORS, draw_faces, label_color

    img = np.zeros((200, 300, 3), np.uint8)
    face = Face.from_probs((100, 0, 80, 80), [0, 0, 0, 0.9, 0.1, 0, 0], EMOTIONS)  # at the top edge
    out = draw_faces(img, [face], ids=[7])
    assert out is not img and img.max() == 0  # the input is left alone
    happy = np.array(EMOTION_COLORS["happy"])
    assert (out == happy).all(axis=2).sum() > 200  # box, label background and confidence bar
    bgr = draw_faces(img, [face.to_dict()], color="bgr")  # dicts work too (the service's form)
    assert (bgr == happy[::-1]).all(axis=2).sum() > 200
    # the confidence bar is a strip of its own under the box: 90 % of the box's width coloured, the rest dark
    strip = out[82:86, 100:180]
    coloured = (strip == happy).all(axis=2).sum(axis=1)
    assert (abs(coloured - 0.9 * 79) <= 2).all() and (strip[:, -5:] == 40).all()
    uncertain = Face.from_probs((10, 100, 60, 60), [0.2, 0.1, 0.1, 0.2, 0.2, 0.1, 0.1], EMOTIONS)
    assert uncertain.uncertain and (draw_faces(img, [uncertain]) == 128).all(axis=2).any()
    assert label_color("beta") == label_color("beta") and len(label_color("beta")) == 3
    assert draw_faces(np.zeros((20, 20), np.uint8), []).shape == (20, 20, 3)


# ------------------------------------------------------------------------------------------------ classify contract
def test_one_colour_or_one_channel_crop_is_one_row_not_h_rows(whole):
    """Before: a (120, 120, 3) crop gave 120 rows and a (96, 96, 1) crop 96 rows, without complaint."""
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (120, 120), dtype=np.uint8)
    colour = np.repeat(gray[:, :, None], 3, axis=2)
    assert whole.classify(colour).shape == (1, 7)
    assert whole.classify(gray[:96, :96, None]).shape == (1, 7)
    np.testing.assert_allclose(whole.classify(colour), whole.classify(gray), atol=1e-6)
    rgba = np.concatenate([colour, np.full((120, 120, 1), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(whole.classify(rgba), whole.classify(gray), atol=1e-6)
    batch = np.stack([colour, colour[::-1]])  # (N, H, W, 3)
    assert whole.classify(batch).shape == (2, 7)
    bgr = colour.copy()
    bgr[:, :, 0] = 0
    np.testing.assert_allclose(whole.classify(bgr, color="bgr"), whole.classify(bgr[:, :, ::-1].copy()), atol=1e-6)


def test_gray_plus_alpha_crop_is_one_gray_crop_not_h_rows(whole):
    """Before: np.array() of a PIL "LA" image, (48, 48, 2), gave 48 rows of (48, 2) crops."""
    from PIL import Image

    gray = np.random.default_rng(6).integers(0, 256, (48, 48), dtype=np.uint8)
    la = np.array(Image.fromarray(gray).convert("LA"))
    assert la.shape == (48, 48, 2)
    la[:, :, 1] = np.arange(48, dtype=np.uint8)[None, :]  # the alpha channel is dropped, as for RGBA
    want = whole.classify(gray)
    assert whole.classify(la).shape == (1, 7)
    np.testing.assert_allclose(whole.classify(la), want, atol=1e-6)
    np.testing.assert_allclose(whole.classify(la / 255.0), want, atol=1e-5)
    np.testing.assert_allclose(whole.classify(np.stack([la, la])), np.repeat(want, 2, axis=0), atol=1e-6)
    np.testing.assert_allclose(whole.classify([la, gray]), np.repeat(want, 2, axis=0), atol=1e-6)
    with pytest.raises(ImageError, match=r"C in 1, 2, 3, 4"):
        whole.classify(np.zeros(48, np.uint8))


def test_gray_batches_of_any_square_size_are_resized(whole):
    crops = np.random.default_rng(3).integers(0, 256, (4, 96, 96), dtype=np.uint8)
    assert whole.classify(crops).shape == (4, 7)
    assert whole.classify(crops[:, :60, :80]).shape == (4, 7)  # (N, H, W), W not 1/2/3/4: a batch


def test_float_and_other_integer_crops_are_converted_or_refused(whole):
    crops = np.random.default_rng(4).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    want = whole.classify(crops)
    np.testing.assert_allclose(whole.classify(crops / 255.0), want, atol=1e-5)
    np.testing.assert_allclose(whole.classify(crops.astype(np.int64)), want, atol=1e-6)
    with pytest.raises(ImageError, match=r"within 0\.\.1"):
        whole.classify(crops.astype(np.float32))  # 0..255 floats: ambiguous, refused
    with pytest.raises(ImageError, match="NaN"):
        whole.classify(np.full((48, 48), np.nan))
    with pytest.raises(ImageError, match=r"0\.\.255"):
        whole.classify(np.full((48, 48), 300, np.int32))
    with pytest.raises(ImageError, match="boolean"):
        whole.classify(np.ones((48, 48), bool))


@pytest.mark.parametrize("shape", [(2, 3, 48, 48), (48,), (1, 2, 3, 4, 5), (0, 48)])
def test_shapes_that_mean_nothing_are_refused(whole, shape):
    with pytest.raises(ImageError):
        whole.classify(np.zeros(shape, np.uint8))


def test_lists_of_files_bytes_and_pil_images(whole, tmp_path):
    from PIL import Image

    crop = np.random.default_rng(5).integers(0, 256, (48, 48), dtype=np.uint8)
    (tmp_path / "c.png").write_bytes(encode(np.repeat(crop[:, :, None], 3, axis=2)))
    probs = whole.classify([tmp_path / "c.png", encode(np.repeat(crop[:, :, None], 3, axis=2)),
                            Image.fromarray(crop), crop])
    assert probs.shape == (4, 7)
    np.testing.assert_allclose(probs, np.repeat(probs[-1:], 4, axis=0), atol=1e-6)


# ------------------------------------------------------------------------------------------------ hints, limits
def test_no_face_in_a_small_square_image_hints_at_detector_none(haar):
    faces = haar.detect(np.full((48, 48), 120, np.uint8))
    assert faces == [] and "--detector none" in faces.hint
    assert haar.detect(np.full((480, 640), 120, np.uint8)).hint is None  # a photo without faces: no hint
    assert haar.detect(np.full((48, 200), 120, np.uint8)).hint is None  # not crop-shaped


@pytest.mark.parametrize("value", [-1, -5, 1.5, "3", True])
def test_max_faces_is_validated_once_for_every_caller(tiny_onnx, value):
    from nasfer.runtime.api import check_max_faces

    with pytest.raises(ValueError, match="max_faces"):
        check_max_faces(value)
    with pytest.raises(ValueError, match="max_faces"):
        EmotionRecognizer(tiny_onnx, max_faces=value)
    assert check_max_faces(0) is None and check_max_faces(None) is None and check_max_faces(3) == 3


def test_a_training_checkpoint_is_not_an_onnx_model(tmp_path):
    from nasfer.errors import ModelError

    (tmp_path / "best.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"nasfer export --checkpoint .*best\.pt"):
        EmotionRecognizer(tmp_path / "best.pt")


def test_per_call_threshold_and_orientation_doubt_make_faces_uncertain(tiny_onnx):
    class Doubtful:
        def detect(self, image):
            return [Box(0, 0, 40, 40, upright=False), Box(50, 50, 40, 40, upright=True)]

    rec = EmotionRecognizer(tiny_onnx, detector=Doubtful(), threads=1)
    doubtful, checked = rec.detect(np.zeros((100, 100, 3), np.uint8), threshold=0.0)
    assert doubtful.uncertain and not checked.uncertain  # turned-or-not could not be told: never confident
    assert all(f.uncertain for f in rec.detect(np.zeros((100, 100, 3), np.uint8), threshold=1.0))
    with pytest.raises(ValueError, match="threshold"):
        rec.detect(np.zeros((100, 100, 3), np.uint8), threshold=2)


@pytest.mark.parametrize("kwargs, named", [
    ({"threads": 10**6}, "threads"),  # before: ONNX Runtime tried to make a million threads (out of memory)
    ({"threads": -1}, "threads"), ({"threads": 2.5}, "threads"), ({"threads": "2"}, "threads"),
    ({"threshold": "0.3"}, "threshold"), ({"threshold": None}, "threshold"), ({"threshold": float("nan")}, "threshold"),
    ({"min_face": "40"}, "min_face"), ({"min_face": 0}, "min_face"),
    ({"max_pixels": -1}, "max_pixels"), ({"max_pixels": 0}, "max_pixels"),
    ({"detector": None}, "detector"), ({"detector": 5}, "detector"),
    # before: accepted and ignored (no detector, so no smallest face and no detector model)
    ({"detector": "none", "min_face": 20}, "min_face"), ({"detector": "none", "detector_model": "yunet.onnx"}, "detector_model"),
])
def test_bad_constructor_arguments_are_a_value_error_naming_them(tiny_onnx, kwargs, named):
    """Before: each was accepted and failed later (AttributeError, TypeError, every image refused) or, for a huge
    thread count, exhausted the machine's memory."""
    with pytest.raises(ValueError, match=named):
        EmotionRecognizer(tiny_onnx, **kwargs)


def test_the_classifier_checks_its_thread_count(tiny_onnx):
    from nasfer.runtime.engine import Classifier

    with pytest.raises(ValueError, match="threads must be an integer 0..1024"):
        Classifier(tiny_onnx, threads=5000)
    assert Classifier(tiny_onnx, threads=0).predict(np.zeros((48, 48), np.uint8)).shape == (1, 7)


def test_a_detector_object_and_a_per_call_threshold_are_checked_too(tiny_onnx, astronaut):
    class Everything:
        def detect(self, rgb):
            return [Box(0, 0, rgb.shape[1], rgb.shape[0])]

    rec = EmotionRecognizer(tiny_onnx, detector=Everything(), threads=1)
    assert len(rec.detect(astronaut)) == 1
    with pytest.raises(ValueError, match="threshold"):
        rec.detect(astronaut, threshold="high")


def test_gray_plus_alpha_arrays_are_accepted_by_detect_as_by_classify(whole):
    """Before: detect refused an (H, W, 2) array that classify accepts (what np.array gives for a PIL "LA" image)."""
    gray = np.random.default_rng(0).integers(0, 256, (60, 60), dtype=np.uint8)
    with_alpha = np.dstack([gray, np.full_like(gray, 255)])
    assert load_image(with_alpha).tolist() == load_image(gray).tolist()
    assert whole.detect(with_alpha)[0].scores == pytest.approx(whole.detect(gray)[0].scores)


def test_a_float_gray_image_in_0_to_1_is_scaled_not_decoded_black():
    """Before: a mode "F" picture with values 0..1 became an all-black image (only values above 255 were scaled)."""
    from PIL import Image
    from skimage import data

    camera = data.camera()
    rgb = load_image(Image.fromarray(camera.astype(np.float32) / 255))
    assert np.abs(rgb[..., 0].astype(int) - camera).max() <= 1
    wide = load_image(Image.fromarray(camera.astype(np.float32) * 4))  # above 255: scaled down, as before
    assert wide.max() == 255 and np.abs(wide[..., 0].astype(int) - camera).max() <= 1


def test_an_empty_path_is_named_as_such():
    with pytest.raises(ImageError, match="empty path"):
        load_image("")
