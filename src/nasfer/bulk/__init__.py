"""Bulk inference on Ray Data: `nasfer predict --backend ray SOURCE... [--out RESULTS]`.

The local backend analyses pictures one after another in one process; this one spreads them over a
pool of Ray actors, each holding one EmotionRecognizer (one ONNX Runtime engine, `--threads` threads,
as many CPUs reserved), on this machine or a Ray cluster (`--address`). It writes the same records
as the local backend (the same function makes them), to the same outputs (`--json`, `--csv`, the
table) and to `--out` (JSON lines, CSV or Parquet, local or on any pyarrow filesystem). Every picture
gives exactly one record; an unreadable one gives an error record.

Modules: `sources` (what to read), `worker` (the actor), `sinks` (where to write), `pipeline` (the
Ray Data job and the command). Nothing here imports Ray until the Ray backend runs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal, Optional

from .. import config
from ..config import option

BACKENDS = ("local", "ray")


@dataclass
class BulkConfig:
    """The `nasfer predict` flags that choose and configure the Ray backend."""

    backend: Literal["local", "ray"] = option("local", "where pictures are analysed: local (this process) or ray "
                                                        "(a pool of ONNX Runtime actors on Ray; pip install 'nasfer[distributed]')")
    out: Optional[str] = option(None, "with --backend ray: also write the records to this file or URI "
                                      "(.jsonl like --json, .csv like --csv, or .parquet)")
    address: Optional[str] = option(None, "with --backend ray: the Ray cluster to use (auto: the one this machine "
                                          "belongs to; default: start Ray on this machine)")
    actors: int = option(0, "with --backend ray: ONNX Runtime actors, each running --threads threads on as "
                            "many reserved CPUs (--threads 0 counts as 1 here; 0: as many actors as the CPUs hold)")
    batch_size: int = option(16, "with --backend ray: pictures per batch sent to an actor")
    ray_cpus: int = option(0, "with --backend ray and no --address: CPUs the local Ray may use (0: all)")

    def validate(self) -> "BulkConfig":
        """ValueError naming the first impossible setting or a Ray flag given without --backend ray."""
        from ..validation import check, check_only_with

        if self.backend != "ray":
            given = [flag for flag, value in (("--out", self.out), ("--address", self.address),
                                              ("--actors", self.actors), ("--ray-cpus", self.ray_cpus)) if value]
            if self.batch_size != 16:
                given.append("--batch-size")
            check_only_with(given, "--backend ray")
        check([(self.actors >= 0, f"--actors must be >= 0, got {self.actors}"),
               (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
               (self.ray_cpus >= 0, f"--ray-cpus must be >= 0, got {self.ray_cpus}")])
        return self


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the BulkConfig flags to `nasfer predict`'s parser."""
    config.add_arguments(parser, BulkConfig)


def requested(args: argparse.Namespace) -> bool:
    """True when the command line asks for the Ray backend; ValueError for Ray flags without it."""
    return config.from_args(BulkConfig, args).validate().backend == "ray"


def run(args: argparse.Namespace) -> int:
    """`nasfer predict --backend ray`: see `nasfer.bulk.pipeline.run`."""
    from .pipeline import run as run_pipeline

    return run_pipeline(args)


__all__ = ["BACKENDS", "BulkConfig", "add_arguments", "requested", "run"]
