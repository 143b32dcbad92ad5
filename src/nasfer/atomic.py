"""Files that readers never see half-written: write a temporary file beside the target, then rename it.

Used for the JSON files other processes read while a run goes on (a run's history.json, a search's
summary.json, model cards, the NAS latency cache), e.g. benchmarks/retrain.py deciding whether a step is
finished. Each write has its own temporary name, so writers of one file at the same time never publish
each other's half-written file (the last rename wins).

`staged_output` does the same for a file written over a long run (`nasfer predict --csv`, `--out`): the
results replace the target only when the run ends; a run stopped by an error or Ctrl-C leaves the target
as it was and what it had written in `<name>.partial`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` in one step (os.replace): a kill leaves the old file or the new one, never a
    cut-off one. OSError as Path.write_text raises it; the temporary file is removed on failure.

    The temporary file, `<name>.<pid>-<random>.tmp` in the same folder, is this call's own: another
    writer of `path` at the same time uses another one.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "x", encoding=encoding) as handle:  # "x": never someone else's file
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the error to report is the write's
            tmp.unlink(missing_ok=True)
        raise


def partial_path(path: str | os.PathLike) -> Path:
    """Where `staged_output` keeps the records of a stopped run: `<name>.partial` beside `path`."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


class StagedFile:
    """A file object written to a temporary file beside `path` (`<name>.<pid>-<random>.tmp`, never an
    existing file): `commit()` moves it onto `path` in one step (os.replace); `abandon()` keeps what was
    written as `partial_path(path)` and leaves `path` untouched.

    A symlink is followed (the file it names is staged and replaced; the link stays) and an existing file's
    permission bits are kept. Where staging cannot work, the target is written in place, as `open` would:
    a device, FIFO or socket (`/dev/stdout`, a shell's `>(gzip > x.gz)`), or a folder this process may not
    create files in. Set `records` (a count the caller keeps up) so that `abandon` drops a file holding only
    a header; left None, an empty file is dropped.

    `mode` is "w" or "wb" (`open_kwargs` as `open` takes them, e.g. encoding, newline). OSError naming `path`
    (IsADirectoryError for a folder). Attribute access goes to the open file (write, flush, ...), so
    csv.writer and pyarrow take it.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w", **open_kwargs):
        if mode not in ("w", "wb"):
            raise ValueError(f"StagedFile writes new files (mode 'w' or 'wb'), got mode {mode!r}")
        self.path = Path(path)
        self.records: int | None = None
        self.tmp: Path | None = None
        try:
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder is there, not a file")
            try:
                st = os.stat(self.path)  # follows links: what would be written
            except FileNotFoundError:
                st = None
            target = Path(os.path.realpath(self.path)) if st is None or stat.S_ISREG(st.st_mode) else None
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not os.access(target.parent, os.W_OK | os.X_OK):
                    target = None  # a writable file in a read-only folder: in place
            if target is None:
                self.file = open(self.path, mode, **open_kwargs)
                return
            self.target = target
            self.tmp = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
            self.file = open(self.tmp, mode.replace("w", "x"), **open_kwargs)
            if st is not None:
                os.chmod(self.tmp, stat.S_IMODE(st.st_mode))
        except OSError as exc:  # named by the target, not by the temporary file
            raise type(exc)(exc.errno, exc.strerror, str(self.path)) from None

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def commit(self) -> Path:
        """Close and move the file onto `path`; return `path`. OSError (naming `path`, with a note saying where
        the records are kept, as `abandon` keeps them) when the move fails."""
        try:
            self.file.close()
            if self.tmp is not None:
                os.replace(self.tmp, self.target)
        except OSError as exc:
            error = type(exc)(exc.errno, exc.strerror, str(self.path))
            error.add_note(partial_message(self.path, self.abandon()))
            raise error from None
        return self.path

    def abandon(self) -> Path | None:
        """Close and keep the file as `<name>.partial` (replacing an older one), or where it is when that cannot
        be written; return where it is, None when it held no record (then removed). Written in place: `path`.
        Never raises: the error that stopped the run is the one to report."""
        with contextlib.suppress(OSError):
            self.file.close()
        if self.tmp is None:
            return self.path
        try:
            if self.records == 0 or self.tmp.stat().st_size == 0:
                self.tmp.unlink()
                return None
        except OSError:
            return None
        try:
            partial = partial_path(self.path)
            os.replace(self.tmp, partial)
            return partial
        except OSError:  # `<name>.partial` cannot be written (a folder is there): the records stay where they are
            return self.tmp


@contextlib.contextmanager
def staged_output(path: str | os.PathLike, mode: str = "w", **open_kwargs):
    """`with staged_output(path) as f:` writes `f` (a StagedFile) and replaces `path` when the block ends;
    when the block raises (an error, Ctrl-C, a broken pipe), `path` is left as it was, the records written so
    far are kept in `<name>.partial`, and a note saying so is added to the exception (`cli.main` prints it)."""
    staged = StagedFile(path, mode, **open_kwargs)
    try:
        yield staged
    except BaseException as exc:
        exc.add_note(partial_message(path, staged.abandon()))
        raise
    staged.commit()  # an OSError here names `path` and where the records are kept


def partial_message(path: str | os.PathLike, partial: Path | None) -> str:
    """"PATH keeps its previous contents (or: was not created); what was written before the stop is in
    PARTIAL (or: nothing had been written)": the note a stopped run adds to its exception."""
    if partial is not None and Path(partial) == Path(path):
        return f"{path} holds what was written before the stop (it was written in place)"
    kept = "keeps its previous contents" if Path(path).exists() else "was not created"
    where = f"what was written before the stop is in {partial}" if partial else "no record had been written"
    return f"{path} {kept}; {where}"


__all__ = ["StagedFile", "partial_message", "partial_path", "staged_output", "write_text_atomic"]
