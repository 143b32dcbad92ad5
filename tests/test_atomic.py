"""write_text_atomic: readers see the old file or the new one, never a cut-off one."""

from pathlib import Path

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
    assert caught.value.__notes__ == [f"{tmp_path / 'new.csv'} was not created; no record had been written"]


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


def test_a_symlinked_target_keeps_its_link_and_mode(tmp_path):
    """Before (review of the staged outputs): the link itself was replaced by a regular file, and the
    replaced file's permission bits were lost."""
    import os

    from nasfer.atomic import StagedFile

    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "r.csv"
    real.write_text("old\n")
    os.chmod(real, 0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    staged = StagedFile(link)
    staged.write("new\n")
    staged.commit()
    assert link.is_symlink() and real.read_text() == "new\n" and oct(real.stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["r.csv"]


def test_devices_and_pipes_are_written_in_place(tmp_path):
    """/dev/null, /dev/stdout or a shell's >(gzip > x.gz) cannot be replaced by a renamed file: they are written
    as `open` would (before: a FileNotFoundError for /dev/fd/63, or a temporary file created in /dev)."""
    import os
    import threading

    from nasfer.atomic import StagedFile

    staged = StagedFile("/dev/null")
    staged.write("thrown away\n")
    assert staged.commit() == Path("/dev/null") and Path("/dev/null").is_char_device()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    staged = StagedFile(fifo)
    staged.write("row 1\n")
    staged.commit()
    reader.join(10)
    assert got == ["row 1\n"] and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_file_holding_only_its_header_is_not_kept(tmp_path):
    from nasfer.atomic import StagedFile

    staged = StagedFile(tmp_path / "r.csv")
    staged.write("file,face,label\n")
    staged.records = 0  # the caller counts its records: none yet
    assert staged.abandon() is None and list(tmp_path.iterdir()) == []
