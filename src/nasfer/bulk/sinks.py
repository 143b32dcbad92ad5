"""Where `nasfer predict --backend ray --out RESULTS` writes its records, chosen by RESULTS' suffix:

  .jsonl / .json   one JSON object per picture, exactly the lines of `nasfer predict --json`
  .csv             one row per face (and per picture without faces or unreadable), as `--csv`
  .parquet         the CSV's rows with typed, nullable columns (file, face, x, y, w, h, label,
                   confidence, uncertain, one score column per label, error)

RESULTS is a local path or a URI of any filesystem pyarrow understands (`s3://bucket/out.parquet`). A
local RESULTS file is replaced only when the run ends (`close`); a stopped run (`abandon`) leaves it as it
was and the records written so far in RESULTS.partial (`nasfer.atomic.StagedFile`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path, PurePosixPath
from typing import Any, Callable

#: Parquet rows are written in row groups of this many rows.
ROW_GROUP = 10_000


def csv_header(labels: list[str]) -> list[str]:
    from ..commands.predict import csv_header as header  # the local backend's columns, exactly

    return header(labels)


def open_output(location: str):
    """A binary output stream for a pyarrow URI, or a `nasfer.atomic.StagedFile` for a local path (parent
    folders made)."""
    from .sources import is_uri, open_filesystem

    if is_uri(location):
        fs, path = open_filesystem(location)
        parent = str(PurePosixPath(path).parent)
        if parent not in ("", ".", "/"):
            fs.create_dir(parent, recursive=True)  # a no-op on object stores, needed on file systems
        return fs.open_output_stream(path)
    from ..atomic import StagedFile

    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    return StagedFile(path, "wb")


def count(stream: Any, records: int = 1) -> None:
    """Add `records` to a staged local file's count (0 after a header: so a stop before the first record leaves
    no header-only .partial); nothing for other streams."""
    if hasattr(stream, "records"):
        stream.records = (stream.records or 0) + records


def finish(stream: Any) -> None:
    """Close `open_output`'s stream: a staged local file is moved onto its path."""
    stream.commit() if hasattr(stream, "commit") else stream.close()


def abandon(stream: Any, location: str) -> str:
    """Close `open_output`'s stream after a stopped run; return the note saying where the records are."""
    from ..atomic import partial_message

    if not hasattr(stream, "abandon"):
        with contextlib.suppress(Exception):
            stream.close()
        return f"{location} holds the records written before the stop"
    return partial_message(location, stream.abandon())


class JsonLinesSink:
    """`--json`'s lines: one JSON object per record."""

    def __init__(self, location: str, labels: list[str]):
        self.location = location
        self.stream = open_output(location)

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        finish(self.stream)

    def abandon(self) -> str:
        return abandon(self.stream, self.location)


class CsvSink:
    """`--csv`'s rows (the same header and `nasfer.commands.predict.csv_rows`)."""

    def __init__(self, location: str, labels: list[str]):
        self.labels = list(labels)
        self.location = location
        self.stream = open_output(location)
        self.text = io.TextIOWrapper(self.stream, encoding="utf-8", newline="")
        self.writer = csv.writer(self.text)
        self.writer.writerow(csv_header(self.labels))
        count(self.stream, 0)

    def write(self, record: dict[str, Any]) -> None:
        from ..commands.predict import csv_rows

        self.writer.writerows(csv_rows(record, self.labels))
        count(self.stream)

    def close(self) -> None:
        self.text.flush()
        self.text.detach()  # the stream stays open for finish()
        finish(self.stream)

    def abandon(self) -> str:
        with contextlib.suppress(Exception):
            self.text.flush()
            self.text.detach()
        return abandon(self.stream, self.location)


class ParquetSink:
    """The CSV's rows as a typed Parquet table (empty cells are nulls), written in row groups."""

    def __init__(self, location: str, labels: list[str]):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.labels = list(labels)
        types = {"file": pa.string(), "face": pa.int32(), "x": pa.int32(), "y": pa.int32(), "w": pa.int32(),
                 "h": pa.int32(), "label": pa.string(), "confidence": pa.float64(), "uncertain": pa.bool_(),
                 "error": pa.string()}
        self.schema = pa.schema([(name, types.get(name, pa.float64())) for name in csv_header(self.labels)])
        self.location = location
        self.stream = open_output(location)
        self.writer = pq.ParquetWriter(self.stream, self.schema)
        self.rows: list[list[Any]] = []
        count(self.stream, 0)

    def write(self, record: dict[str, Any]) -> None:
        from ..commands.predict import csv_rows

        self.rows += csv_rows(record, self.labels)
        count(self.stream)
        if len(self.rows) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        columns = list(zip(*self.rows)) if self.rows else [[] for _ in self.schema]
        arrays = [pa.array([_cell(v, field.type) for v in values], type=field.type)
                  for values, field in zip(columns, self.schema)]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows = []

    def close(self) -> None:
        if self.rows:
            self._flush()
        self.writer.close()
        finish(self.stream)

    def abandon(self) -> str:
        """The row groups written so far, as a readable Parquet file (the footer is written)."""
        with contextlib.suppress(Exception):
            if self.rows:
                self._flush()
            self.writer.close()
        return abandon(self.stream, self.location)


def _cell(value: Any, type_: Any) -> Any:
    """A CSV cell as its typed Parquet value ('' is null; uncertain 0/1 is a boolean)."""
    import pyarrow as pa

    if value == "" or value is None:
        return None
    if pa.types.is_boolean(type_):
        return bool(value)
    return value


#: Results suffix -> sink.
SINKS: dict[str, Callable[[str, list[str]], Any]] = {
    ".jsonl": JsonLinesSink, ".json": JsonLinesSink, ".csv": CsvSink, ".parquet": ParquetSink,
}


def create_sink(location: str, labels: list[str]):
    """The sink for `location`'s suffix; ValueError listing the suffixes for any other."""
    suffix = Path(location.split("://", 1)[-1]).suffix.lower()
    if suffix not in SINKS:
        raise ValueError(f"--out {location}: unknown results format {suffix or '(no suffix)'!r}; "
                         f"use one of {', '.join(SINKS)}")
    return SINKS[suffix](location, labels)


__all__ = ["SINKS", "create_sink", "csv_header", "open_output"]
