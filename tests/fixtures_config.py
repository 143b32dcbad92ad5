"""One check for the tests of the commands' dataclass configs (`validate()` on impossible flag values)."""

from __future__ import annotations

import re
from typing import Any

import pytest


def assert_validation(cfg: Any, message: str | None) -> None:
    """`cfg.validate()` returns `cfg` when `message` is None; else it raises ValueError whose text contains
    `message` literally (matched with `re.escape`)."""
    if message is None:
        assert cfg.validate() is cfg
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            cfg.validate()
