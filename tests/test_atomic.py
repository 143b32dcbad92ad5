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


def test_staged_output_replaces_the_target_only_when_the_block_ends(tmp_path):
    from nasfer.atomic import staged_output

    target = tmp_path / "results.csv"
    target.write_text("old results\n")
    with staged_output(target, newline="") as out:
        out.write("new row\n")
        assert target.read_text() == "old results\n"  # still the old file while the run goes on
    assert target.read_text() == "new row\n" and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, ValueError, BrokenPipeError])
def test_a_stopped_block_keeps_the_target_and_its_rows_in_partial(tmp_path, stop):
    """Before: `nasfer predict --csv results.csv` truncated results.csv at its start, so a run stopped by
    --strict, an error or Ctrl-C lost the previous results."""
    from nasfer.atomic import staged_output

    target = tmp_path / "results.csv"
    target.write_text("old results\n")
    with pytest.raises(stop) as caught:
        with staged_output(target) as out:
            out.write("row 1\n")
            raise stop()
    assert target.read_text() == "old results\n"
    assert (tmp_path / "results.csv.partial").read_text() == "row 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.csv.partial"]
    assert caught.value.__notes__ == [f"{target} keeps its previous contents; what was written before the stop "
                                      f"is in {tmp_path / 'results.csv.partial'}"]


def test_a_block_stopped_before_writing_leaves_nothing(tmp_path):
    from nasfer.atomic import staged_output

    with pytest.raises(ValueError) as caught:
        with staged_output(tmp_path / "new.csv"):
            raise ValueError("bad flag")
    assert list(tmp_path.iterdir()) == []
    assert caught.value.__notes__ == [f"{tmp_path / 'new.csv'} was not created; nothing had been written"]


def test_a_failed_commit_names_the_target_and_keeps_the_records(tmp_path, monkeypatch):
    import os

    from nasfer.atomic import StagedFile

    target = tmp_path / "results.csv"
    staged = StagedFile(target)
    staged.write("row 1\n")
    real = os.replace

    def refused(src, dst):
        if str(dst) == str(target):
            raise PermissionError(13, "Permission denied", str(src))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(PermissionError) as caught:
        staged.commit()
    assert caught.value.filename == str(target) and not target.exists()
    assert (tmp_path / "results.csv.partial").read_text() == "row 1\n"
    assert caught.value.__notes__ == [f"{target} was not created; what was written before the stop is in "
                                      f"{tmp_path / 'results.csv.partial'}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv.partial"]  # no temporary file left


def test_a_staged_file_is_named_by_its_target_and_makes_its_folders(tmp_path):
    from nasfer.atomic import StagedFile

    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        StagedFile(tmp_path / "adir")
    assert caught.value.filename == str(tmp_path / "adir")
    staged = StagedFile(tmp_path / "new" / "deeper" / "r.csv")
    staged.write("x")
    assert staged.commit().read_text() == "x"
