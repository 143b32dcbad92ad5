"""Small generated datasets in every supported layout, with deliberately broken rows and files.

`pattern_image(label)` draws a class-specific pattern, so the images are learnable: a model that
trains on them must end far above chance, which is what the training smoke tests check.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nasfer.labels import EMOTIONS


def pattern_image(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A noisy image whose bright bar's row (and orientation) encodes `label`."""
    img = rng.normal(90, 25, (size, size))
    band = 4 + label * (size - 8) // len(EMOTIONS)
    if label % 2:
        img[:, band:band + 5] += 120
    else:
        img[band:band + 5, :] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_class_tree(root: Path, per_class: int, seed: int = 0, classes=EMOTIONS, split: str | None = None,
                     prefix: str = "img") -> None:
    rng = np.random.default_rng(seed)
    for i, name in enumerate(classes):
        folder = root / split / name if split else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            (folder / f"{prefix}_{j:04d}.png").write_bytes(png_bytes(pattern_image(i % len(EMOTIONS), rng)))


@pytest.fixture
def fer_csv(tmp_path: Path) -> Path:
    """fer2013.csv with 14 good rows (2 per class, Training/PublicTest/PrivateTest) and 3 bad ones."""
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    usages = ["Training", "Training", "PublicTest", "PrivateTest"]
    for k in range(14):
        label = k % 7
        pixels = " ".join(map(str, pattern_image(label, rng).ravel()))
        lines.append(f"{label},{pixels},{usages[k % 4]}")
    lines.append("3," + " ".join(["1"] * 2303) + ",Training")           # row 16: too few pixels
    lines.append("4," + " ".join(["x"] * 2304) + ",Training")           # row 17: non-numeric
    lines.append("9," + " ".join(["1"] * 2304) + ",Training")           # row 18: bad emotion
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def kaggle_zip(tmp_path: Path) -> Path:
    """Kaggle FER2013 layout in a zip: train/<class>/Training_*, test/<class>/PublicTest_* and PrivateTest_*."""
    rng = np.random.default_rng(1)
    path = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(EMOTIONS):
            for j in range(3):
                zf.writestr(f"train/{name}/Training_{i}{j}.jpg", png_bytes(pattern_image(i, rng)))
            zf.writestr(f"test/{name}/PublicTest_{i}.jpg", png_bytes(pattern_image(i, rng)))
            zf.writestr(f"test/{name}/PrivateTest_{i}.jpg", png_bytes(pattern_image(i, rng)))
        zf.writestr("train/happy/Training_broken.jpg", b"\xff\xd8 not really a jpeg")
        zf.writestr("__MACOSX/train/happy/._Training_00.jpg", b"junk")
        zf.writestr("README.txt", "not a sample")
    return path


@pytest.fixture
def ckplus_dir(tmp_path: Path) -> Path:
    """CK+48 layout with subject-prefixed names and a contempt folder."""
    rng = np.random.default_rng(2)
    root = tmp_path / "CK+48"
    for i, name in enumerate(["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]):
        (root / name).mkdir(parents=True)
        for subject in range(3):
            for frame in range(2):
                img = pattern_image(i % 7, rng)
                (root / name / f"S{100 + subject:03d}_00{i}_0000000{frame}.png").write_bytes(png_bytes(img))
    return tmp_path


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    """A <class>/<image> folder with a corrupt image, a text file and an unknown class."""
    root = tmp_path / "faces"
    write_class_tree(root, per_class=2, classes=("Happiness", "SAD", "neutral"))
    (root / "SAD" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "neutral" / "notes.txt").write_text("hello")
    (root / "bored").mkdir()
    (root / "bored" / "x.png").write_bytes(png_bytes(np.zeros((48, 48), np.uint8)))
    return root


@pytest.fixture
def learnable_folder(tmp_path: Path) -> Path:
    """train/ and test/ splits of the pattern task, 40 + 8 images per class."""
    root = tmp_path / "learnable"
    write_class_tree(root, per_class=40, seed=3, split="train")
    write_class_tree(root, per_class=8, seed=4, split="test")
    return root
