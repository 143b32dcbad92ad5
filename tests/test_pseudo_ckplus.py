"""scripts/build_pseudo_ckplus.py: the fine-tuning check's dataset comes from held-out Training faces only
(it was drawn from PublicTest, on which the protocol forbids training)."""

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_data import pattern_image, png_bytes
from nasfer.labels import EMOTIONS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import build_pseudo_ckplus  # noqa: E402


@pytest.fixture
def fer_zip(tmp_path: Path) -> Path:
    """Kaggle FER2013 layout: 20 Training and 3 PublicTest faces per class."""
    rng = np.random.default_rng(5)
    path = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(EMOTIONS):
            for j in range(20):
                zf.writestr(f"train/{name}/Training_{i}_{j}.jpg", png_bytes(pattern_image(i, rng)))
            for j in range(3):
                zf.writestr(f"test/{name}/PublicTest_{i}_{j}.jpg", png_bytes(pattern_image(i, rng)))
    return path


def held_out(fer_zip: Path, val_fraction: float) -> set[str]:
    from nasfer.config import TrainConfig
    from nasfer.data import read_dataset
    from nasfer.data.splits import VAL, sample_keys
    from nasfer.train import plan_split

    data = read_dataset(fer_zip)
    roles = plan_split(data, TrainConfig(val_fraction=val_fraction), sample_keys(data.sources, str(fer_zip)))
    return {str(s) for s in data.sources[roles == VAL]}


def test_faces_come_from_the_validation_role_of_training_only(fer_zip, tmp_path):
    manifest = build_pseudo_ckplus.build(fer_zip, tmp_path / "a", val_fraction=0.3, subjects=5)
    sources = [f["fer2013"] for f in manifest["files"]]
    assert sources and set(sources) <= held_out(fer_zip, 0.3)
    assert not any("PublicTest" in s for s in sources) and manifest["split"] == "Training, validation role"
    assert manifest["n"] == len(sources) == sum(manifest["class_counts"].values())
    assert set(manifest["class_counts"]) == set(build_pseudo_ckplus.CLASSES)  # contempt has no FER2013 label
    for f in manifest["files"]:
        image = Image.open(tmp_path / "a" / "CK+48" / f["file"])
        assert image.size == (48, 48) and image.mode == "L"
    subjects = {f["file"].split("/")[1].split("_")[0] for f in manifest["files"]}
    assert len(subjects) == 5  # every pseudo-subject has a face
    again = build_pseudo_ckplus.build(fer_zip, tmp_path / "b", val_fraction=0.3, subjects=5)
    assert again["files"] == manifest["files"]  # deterministic for a seed


def test_a_split_file_of_other_images_and_an_output_inside_the_repository_are_refused(fer_zip, tmp_path, capsys):
    other = tmp_path / "splits.json"
    other.write_text(json.dumps({"format": "nasfer-splits/1", "splits": {"train/happy/Training_x.jpg": "val"}}))
    assert build_pseudo_ckplus.main(["--fer", str(fer_zip), "--out", str(tmp_path / "c"), "--split-file",
                                     str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "splits.json" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,pixels,Usage\n")
    with pytest.raises(SystemExit, match="row order"):  # its seed-0 draw would not be the shipped models' split
        build_pseudo_ckplus.build(csv, tmp_path / "d")
    inside = Path(build_pseudo_ckplus.__file__).resolve().parents[1] / "pseudo"
    assert build_pseudo_ckplus.main(["--fer", str(fer_zip), "--out", str(inside)]) == 2
    assert "inside the repository" in capsys.readouterr().err and not inside.exists()
