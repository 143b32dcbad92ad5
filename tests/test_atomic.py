"""write_text_atomic: readers see the old file or the new one, never a cut-off one."""

import pytest

from nasfer.atomic import write_text_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "history.json"
    write_text_atomic(target, "[1]")
    assert target.read_text() == "[1]" and list(tmp_path.iterdir()) == [target]

    import os

    def killed(src, dst):
        raise KeyboardInterrupt  # the process is stopped between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "[1, 2")
    assert target.read_text() == "[1]" and list(tmp_path.iterdir()) == [target]
    monkeypatch.undo()
    write_text_atomic(target, "[1, 2]")
    assert target.read_text() == "[1, 2]"
