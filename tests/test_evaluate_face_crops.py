"""`nasfer evaluate` scores a model trained with --detect-faces on the face crops it trained on.

User review: a model fine-tuned with `nasfer train --detect-faces` on photos scored 1.000 in its test.json,
and 0.750 with `nasfer evaluate --split-file RUN/splits.json --split test` on the very same test images: evaluate
shrank the whole photos to 48x48 instead of cropping their faces, and had no way to crop them, nor said so.
"""

from __future__ import annotations

import numpy as np
import pytest

from fixtures_data import png_bytes
from fixtures_evaluate import save_tiny_checkpoint
from nasfer.checkpoint import load_checkpoint, save_checkpoint
from nasfer.evaluate import EvalConfig, predict_split
from nasfer.runtime.faces import Box


class OneBox:  # a stand-in detector: the face is where the photos have it
    def detect(self, image):
        return [Box(60, 40, 96, 96)]


@pytest.fixture
def photos(tmp_path, monkeypatch):
    import nasfer.data.facecrop as facecrop

    monkeypatch.setattr(facecrop, "create_detector", lambda name="haar": OneBox())
    for label in ("happy", "sad"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(2):
            photo = np.full((240, 320), 30, np.uint8)
            photo[40:136, 60:156] = 220  # the face
            (tmp_path / "photos" / label / f"{i}.png").write_bytes(png_bytes(photo))
    return tmp_path / "photos"


def model_trained(tmp_path, detect_faces: bool):
    path = save_tiny_checkpoint(tmp_path / f"crops-{detect_faces}.pt")
    ckpt = load_checkpoint(path)
    ckpt["config"] = {"train": {"detect_faces": detect_faces}, "data": {"data": "photos"}}
    save_checkpoint(path, ckpt)
    return path


def test_a_model_trained_on_face_crops_is_scored_on_face_crops(tmp_path, photos):
    scored = predict_split(EvalConfig(data=str(photos), model=str(model_trained(tmp_path, True)), split="all"))
    assert scored.part.images.mean() > 200  # the bright face fills every crop
    assert any("face cropped in 4 of 4" in n for n in scored.notes), scored.notes
    plain = predict_split(EvalConfig(data=str(photos), model=str(model_trained(tmp_path, True)), split="all",
                                     detect_faces=False))
    assert plain.part.images.mean() < 200  # --no-detect-faces: the whole photos, as asked


def test_detect_faces_is_a_flag_for_other_models_too(tmp_path, photos):
    model = str(model_trained(tmp_path, False))
    assert predict_split(EvalConfig(data=str(photos), model=model, split="all")).part.images.mean() < 200
    assert predict_split(EvalConfig(data=str(photos), model=model, split="all",
                                    detect_faces=True)).part.images.mean() > 200


def test_int8_calibration_and_parity_read_face_crops_for_a_model_trained_on_them(photos):
    """`nasfer export --quantize int8 --calibration-data PHOTOS` for a --detect-faces model calibrated on whole
    photos shrunk to 48x48 (review of session 23: quantize.py ignored the training run's --detect-faces), so the
    int8 ranges and the parity check saw images the model never sees; now the card's training config decides."""
    from nasfer.quantize import split_images

    for label in ("happy", "sad"):  # enough photos for training, validation and test roles
        for i in range(2, 8):
            (photos / label / f"{i}.png").write_bytes((photos / label / "0.png").read_bytes())
    kwargs = {"n_calibration": 4, "seed": 0, "val_fraction": 0.3}
    crops = split_images(str(photos), ("happy", "sad"), 48, training={"train": {"detect_faces": True}}, **kwargs)
    assert crops.calibration.mean() > 200 and crops.validation.mean() > 200 and crops.split["face_crops"]
    whole = split_images(str(photos), ("happy", "sad"), 48, training={"train": {"detect_faces": False}}, **kwargs)
    assert whole.calibration.mean() < 200 and not whole.split["face_crops"]
    assert split_images(str(photos), ("happy", "sad"), 48, **kwargs).calibration.mean() < 200  # no card: as before


def ensemble_of(tmp_path, *members):
    from nasfer.models.ensemble import ensemble_checkpoint

    path = tmp_path / "ensemble.pt"
    save_checkpoint(path, ensemble_checkpoint([str(m) for m in members]))
    return path


def test_an_ensemble_of_face_crop_members_is_scored_on_face_crops(tmp_path, photos):
    """Review of session 24: only a model's own training config was read, so an ensemble (whose config keeps its
    members' under "members") of --detect-faces members was scored on whole photos."""
    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir(), two.mkdir()
    ensemble = ensemble_of(tmp_path, model_trained(one, True), model_trained(two, True))
    assert predict_split(EvalConfig(data=str(photos), model=str(ensemble), split="all")).part.images.mean() > 200


def test_an_ensemble_refuses_members_that_read_different_inputs(tmp_path):
    from nasfer.errors import ModelError

    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir(), two.mkdir()
    with pytest.raises(ModelError, match=r"whole images and .* face crops \(--detect-faces\)"):
        ensemble_of(tmp_path, model_trained(one, True), model_trained(two, False))


def test_an_ensemble_says_which_images_its_members_trained_on(tmp_path, photos):
    """The 'trained or selected this model' note read only the top-level config, which an ensemble lacks."""
    import json

    from nasfer.data import read_dataset
    from nasfer.data.splits import sample_keys

    keys = sample_keys(read_dataset(photos).sources, str(photos)).tolist()
    members = []
    for name, role in (("a", "train"), ("b", "test")):
        run = tmp_path / name
        run.mkdir()
        (run / "splits.json").write_text(json.dumps({k: role if i < 2 else "test" for i, k in enumerate(keys)}))
        path = model_trained(run, False)
        ck = load_checkpoint(path)
        ck["config"]["train"]["out"] = str(run)
        save_checkpoint(path, ck)
        members.append(path)
    (tmp_path / "ensemble").mkdir()
    ensemble = ensemble_of(tmp_path / "ensemble", *members)  # no splits.json beside it: the members' runs say
    notes = predict_split(EvalConfig(data=str(photos), model=str(ensemble), split="all")).notes
    assert any(n.startswith("2 of these 4 images trained or selected this model") for n in notes), notes
