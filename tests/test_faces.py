"""Face detectors on real faces with known counts, crops that match the FER2013 frame, alignment, edges.

Real faces: FER2013 test crops (upscaled to 160 px: 48 px is below Haar's reach) pasted at known
places onto larger canvases, and scikit-image's astronaut photo (one face, at a known place).
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from nasfer.errors import ModelError
from nasfer.runtime.faces import (DETECTORS, YUNET_FILENAME, Box, FaceDetector, HaarDetector, create_detector, crop_face,
                          eye_angle)

FACE_PX = 160
SLOTS = [(40, 60), (250, 200), (460, 60)]  # top-left corners on a 680x420 canvas


def canvas(shape=(420, 680)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(120, 6, shape), 0, 255).astype(np.uint8)


def paste(img: np.ndarray, face48: np.ndarray, x: int, y: int, px: int = FACE_PX) -> None:
    import cv2

    img[y:y + px, x:x + px] = cv2.resize(face48, (px, px), interpolation=cv2.INTER_CUBIC)


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def best_iou(box: Box, boxes) -> float:
    return max((box.iou(b) for b in boxes), default=0.0)


@pytest.fixture(scope="module")
def fer_faces(fer2013_zip, yunet_onnx):
    """Twelve FER2013 test faces that Haar and YuNet each find exactly once when pasted alone (deterministic)."""
    import cv2

    haar, yunet = HaarDetector(), create_detector("yunet", yunet_onnx)
    chosen = []
    with zipfile.ZipFile(fer2013_zip) as z:
        names = sorted(n for n in z.namelist() if n.startswith("test/") and n.endswith(".jpg"))
        for name in names[::37]:
            face = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            img = canvas((300, 300))
            paste(img, face, 70, 70)
            if len(haar.detect(img)) == 1 and len(yunet.detect(rgb(img))) == 1:
                chosen.append(face)
            if len(chosen) == 12:
                return chosen
    pytest.skip("not enough FER2013 faces that both detectors find")


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data
    return data.astronaut()  # 512x512 RGB, one face at about (177, 67, 93, 93)


ASTRONAUT_FACE = Box(177, 67, 93, 93)


@pytest.mark.parametrize("detector", ["haar", "yunet"])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_detectors_count_pasted_faces(detector, count, fer_faces, yunet_onnx):
    det = create_detector(detector, yunet_onnx if detector == "yunet" else None)
    img = canvas()
    for k in range(count):
        paste(img, fer_faces[k + (count > 1) * 2], *SLOTS[k])
    boxes = det.detect(rgb(img))
    assert len(boxes) == count, boxes
    for x, y in SLOTS[:count]:
        assert best_iou(Box(x, y, FACE_PX, FACE_PX), boxes) > 0.5
    if detector == "yunet":
        assert all(0 < b.score <= 1 and len(b.landmarks) == 5 for b in boxes)
    else:
        assert all(b.score is None and b.landmarks is None for b in boxes)


SCENES = ("coffee", "chelsea", "rocket", "brick", "coins", "horse", "page", "text", "clock", "moon", "cat",
          "hubble_deep_field", "grass", "gravel", "retina", "logo", "colorwheel", "checkerboard", "cell")


@pytest.mark.parametrize("detector, allowed", [("haar", 2), ("yunet", 0)])
def test_few_false_faces_in_scenes_without_people(detector, allowed, yunet_onnx):
    """19 scikit-image scenes without people: YuNet finds nothing; Haar's only false boxes are 2 coins."""
    from skimage import data
    det = create_detector(detector, yunet_onnx if detector == "yunet" else None)
    found = {}
    for name in SCENES:
        img = getattr(data, name)()
        img = (img * 255).astype(np.uint8) if img.dtype != np.uint8 else img
        img = img[:, :, :3] if img.ndim == 3 else rgb(img)
        boxes = det.detect(img)
        if boxes:
            found[name] = len(boxes)
    assert sum(found.values()) <= allowed, found


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_astronaut_has_one_face_also_when_huge(detector, astronaut, yunet_onnx):
    import cv2

    det = create_detector(detector, yunet_onnx if detector == "yunet" else None)
    (box,) = det.detect(astronaut)
    assert box.iou(ASTRONAUT_FACE) > 0.6
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_LINEAR)  # detected on a 640 px copy
    (big_box,) = det.detect(big)
    assert big_box.iou(ASTRONAUT_FACE.scaled(4)) > 0.6
    if big_box.landmarks:
        assert big_box.landmarks[0][0] > 4 * ASTRONAUT_FACE.x  # landmarks mapped back as well


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_crop_square_is_the_fer2013_frame(detector, fer_faces, yunet_onnx):
    """Margin 0 is right: the square crop_face cuts around a detected face is the original FER2013 crop."""
    det = create_detector(detector, yunet_onnx if detector == "yunet" else None)
    sides, offsets, corr = [], [], []
    for face in fer_faces:
        img = canvas((400, 400))
        paste(img, face, 110, 90)
        (box,) = det.detect(rgb(img))
        sides.append(max(box.w, box.h) / FACE_PX)
        offsets.append(np.hypot(box.x + box.w / 2 - (110 + FACE_PX / 2), box.y + box.h / 2 - (90 + FACE_PX / 2)))
        crop = crop_face(img, box, 48, align=False)  # FER2013 itself is not roll-aligned
        corr.append(np.corrcoef(crop.ravel().astype(float), face.ravel().astype(float))[0, 1])
    assert 0.9 < np.median(sides) < 1.12 and np.median(offsets) < 0.08 * FACE_PX, (sides, offsets)
    assert np.median(corr) > 0.5, corr


def test_alignment_levels_the_eyes(astronaut, yunet_onnx):
    """A face rolled by 25 degrees, with its eye landmarks, is cut out upright again."""
    import cv2

    (upright,) = create_detector("yunet", yunet_onnx).detect(astronaut)
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    reference = crop_face(gray, upright, 48, align=False).astype(float)
    centre = (upright.x + upright.w / 2, upright.y + upright.h / 2)
    matrix = cv2.getRotationMatrix2D(centre, 25, 1.0)
    rolled = cv2.warpAffine(gray, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
    marks = tuple(tuple(matrix @ np.array([x, y, 1.0])) for x, y in upright.landmarks)
    box = Box(upright.x, upright.y, upright.w, upright.h, upright.score, marks)
    assert eye_angle(marks) == pytest.approx(eye_angle(upright.landmarks) - 25, abs=0.01)
    aligned = crop_face(rolled, box, 48, align=True).astype(float)
    unaligned = crop_face(rolled, box, 48, align=False).astype(float)

    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    assert corr(aligned, reference) > 0.9 and corr(aligned, reference) > corr(unaligned, reference) + 0.1


def test_none_detector_and_crop_identity():
    img = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    (box,) = create_detector("none").detect(rgb(img))
    assert box.as_tuple() == (0, 0, 48, 48)
    assert np.array_equal(crop_face(img, box, 48), img)
    assert create_detector("none").detect(np.zeros((0, 5, 3), np.uint8)) == []


def test_crop_face_at_the_border_and_from_tuples():
    img = np.zeros((100, 100), np.uint8)
    img[:, :20] = 200
    crop = crop_face(img, (-30, 20, 60, 60), 48)  # half outside: edge pixels repeat, no stretching
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop[:, :38].min() == 200 and crop[:, -6:].max() == 0  # 50 of 60 columns bright
    assert crop_face(img, (500, 500, 10, 10), 32).shape == (32, 32)  # no overlap at all
    tilted = Box(20, 20, 60, 60, landmarks=((30, 30), (70, 50), (50, 60), (35, 75), (65, 75)))
    assert crop_face(img, tilted, 48).shape == (48, 48)


def test_box_geometry():
    a, b = Box(0, 0, 10, 10), Box(5, 0, 10, 10)
    assert a.iou(b) == pytest.approx(50 / 150) and a.iou(Box(20, 20, 5, 5)) == 0.0
    s = Box(10, 20, 30, 40, 0.9, ((1.0, 2.0),)).scaled(2)
    assert s.as_tuple() == (20, 40, 60, 80) and s.landmarks == ((2.0, 4.0),) and s.score == 0.9
    assert Box(-5, 90, 20, 20).clipped(100, 100).as_tuple() == (0, 90, 15, 10)
    assert eye_angle(None) == 0.0 and eye_angle([(0, 0), (10, 10)]) == pytest.approx(45)
    assert eye_angle([(10, 10), (0, 0)]) == pytest.approx(-135)  # the person's right eye is on the image's right


def test_registry_and_errors(tmp_path, monkeypatch):
    assert set(DETECTORS) == {"haar", "yunet", "none"}
    assert all(isinstance(create_detector(n), FaceDetector) for n in ("haar", "none"))
    with pytest.raises(ValueError, match="haar, yunet, none"):
        create_detector("dlib")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="nasfer models fetch yunet"):
        create_detector("yunet")
    with pytest.raises(ModelError, match="no such file"):
        create_detector("yunet", tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"nope")
    with pytest.raises(ModelError, match="not a YuNet model"):
        create_detector("yunet", tmp_path / "bad.onnx")


def test_yunet_is_found_in_the_user_cache(tmp_path, monkeypatch, yunet_onnx, astronaut):
    import shutil

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "nasfer").mkdir()
    shutil.copy(yunet_onnx, tmp_path / "nasfer" / YUNET_FILENAME)
    assert len(create_detector("yunet").detect(astronaut)) == 1


def test_tiny_and_odd_images_give_no_error(yunet_onnx):
    for name in ("haar", "yunet", "none"):
        det = create_detector(name, yunet_onnx if name == "yunet" else None)
        for shape in [(1, 1), (2, 3000), (3000, 2), (5, 5), (48, 48)]:
            boxes = det.detect(np.zeros((*shape, 3), np.uint8))
            assert len(boxes) == (1 if name == "none" else 0)


def test_training_crops_use_the_inference_crop():
    from nasfer.data import facecrop
    from nasfer.runtime.faces import crop_face as inference_crop

    assert facecrop.crop_face is inference_crop


def test_yunet_skips_the_orientation_check_only_for_scores_no_turned_face_reaches(fer_faces, astronaut, yunet_onnx,
                                                                                   monkeypatch):
    """The score gate's premise on real faces: turned, no face scores `upright_score`; a clear upright face does,
    and is then reported upright without the 4 re-detections; turned faces still get them."""
    from nasfer.runtime.yunet import YuNetDetector

    unchecked = YuNetDetector(yunet_onnx, check_orientation=False)
    gate = YuNetDetector(yunet_onnx).upright_score
    faces = [astronaut]
    for face in fer_faces:  # each found exactly once upright at this place (see the fixture)
        img = canvas((300, 300))
        paste(img, face, 70, 70)
        faces.append(rgb(img))
    for img in faces:
        for turns in (1, 2, 3):
            scores = [b.score for b in unchecked.detect(np.ascontiguousarray(np.rot90(img, turns)))]
            assert max(scores, default=0.0) < gate - 0.01, (turns, scores)

    det = YuNetDetector(yunet_onnx)
    calls = []
    real = det._upright
    monkeypatch.setattr(det, "_upright", lambda image, box: calls.append(box) or real(image, box))
    (box,) = det.detect(astronaut)
    assert box.score >= gate and box.upright is True and calls == []
    (turned,) = det.detect(np.ascontiguousarray(np.rot90(astronaut, 1)))
    assert len(calls) == 1 and turned.upright is True and abs(eye_angle(turned.landmarks)) > 45


@pytest.mark.parametrize("make", ["onnx", "text"])
def test_a_file_that_is_no_haar_cascade_is_one_clear_error(tmp_path, make):
    """Before: a YuNet .onnx given as --detector-model without --detector yunet raised SystemError from inside
    OpenCV at the first picture (predict: a traceback; serve: every worker failed to boot)."""
    from nasfer.errors import ModelError
    from nasfer.runtime.faces import check_detector, create_detector

    path = tmp_path / ("yunet.onnx" if make == "onnx" else "notes.xml")
    path.write_bytes(b"\x08\x07\x12\x04onnx-ish bytes" if make == "onnx" else b"not a cascade")
    for call in (lambda: create_detector("haar", path), lambda: check_detector("haar", path)):
        with pytest.raises(ModelError, match="not a Haar cascade XML file OpenCV can load") as caught:
            call()
        assert ("--detector yunet" in str(caught.value)) == (make == "onnx")
