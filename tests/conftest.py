"""Shared fixtures. Each fixtures_*.py module is owned by the part of the code it serves."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures_data import *  # noqa: E402,F401,F403
from fixtures_evaluate import *  # noqa: E402,F401,F403
from fixtures_models import *  # noqa: E402,F401,F403
from fixtures_nas import *  # noqa: E402,F401,F403
from fixtures_service import *  # noqa: E402,F401,F403

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FER2013_ZIP = SHARED / "datasets" / "fer2013.zip"
YUNET_ONNX = SHARED / "models" / "face_detection_yunet.onnx"


@pytest.fixture(scope="session")
def fer2013_zip() -> Path:
    """The real FER2013 zip from ../shared/datasets; the test is skipped where it is absent."""
    if not FER2013_ZIP.is_file():
        pytest.skip(f"real FER2013 data not found at {FER2013_ZIP} (see ../shared/datasets/README.md)")
    return FER2013_ZIP


@pytest.fixture(scope="session")
def yunet_onnx() -> Path:
    """The YuNet detector model from ../shared/models; skipped where absent."""
    if not YUNET_ONNX.is_file():
        pytest.skip(f"YuNet model not found at {YUNET_ONNX} (see ../shared/models/README.md)")
    return YUNET_ONNX


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Tests share a 2-core machine with whatever else runs: keep torch to one thread."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
