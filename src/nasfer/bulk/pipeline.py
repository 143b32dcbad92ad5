"""The Ray Data job behind `nasfer predict --backend ray`, and the command around it.

Pipeline (Ray Data, https://docs.ray.io/en/latest/data/batch_inference.html): the sources, listed on
the driver, become a dataset of small rows (index, location, name); `map_batches` sends batches of
them to a fixed pool of `PredictWorker` actors (ActorPoolStrategy), each reading its pictures
(local disk or pyarrow filesystem), detecting and classifying them, and returning one JSON record per
picture; the driver streams the records, in input order, to the outputs. Model files travel to the
actors through the object store, so cluster nodes need nasfer installed but no model copy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import Any, Iterator

from .. import config
from ..errors import NasferError
from . import BulkConfig
from .sinks import create_sink
from .sources import Source, list_sources
from .worker import ModelFiles, PredictWorker


def actor_count(bulk: BulkConfig, threads: int, ray: Any) -> int:
    """`--actors`, or (0) as many actors of `threads` CPUs as the cluster's CPUs hold (at least 1)."""
    if bulk.actors:
        return bulk.actors
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // threads))


def records(sources: list[Source], cfg: Any, bulk: BulkConfig, files: ModelFiles, ray: Any) -> Iterator[dict]:
    """One record per source, in order, computed by a pool of actors on the connected Ray."""
    import ray.data
    import ray.exceptions

    threads = max(1, cfg.threads)
    cfg = dataclasses.replace(cfg, threads=threads)  # per actor; 0 would mean all of the node's cores
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the command shows its own bar, on a terminal only
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO lines would mix with the results
    rows = [{"index": i, "location": s.location, "shown": s.shown, "missing": s.missing,
             "filesystem": s.filesystem} for i, s in enumerate(sources)]
    batches = -(-len(rows) // bulk.batch_size)
    size = min(actor_count(bulk, threads, ray), batches)  # no idle actors holding a model copy
    dataset = ray.data.from_items(rows, override_num_blocks=min(batches, 4 * size))
    results = dataset.map_batches(
        PredictWorker, fn_constructor_kwargs={"cfg": cfg, "files": files}, batch_size=bulk.batch_size,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=size), num_cpus=threads)
    # Ray Data restarts an actor that dies (e.g. out of memory) and retries its batch by default.
    expected = 0
    try:
        for batch in results.iter_batches(batch_size=bulk.batch_size, batch_format="numpy"):
            for index, text in zip(batch["index"], batch["record"]):
                if int(index) != expected:
                    raise NasferError(f"Ray returned picture #{int(index)} where #{expected} was expected")
                expected += 1
                yield json.loads(text)
    except ray.exceptions.RayError as exc:  # e.g. an actor that cannot start on a node
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NasferError(f"the Ray job failed after {expected} of {len(sources)} pictures: {first}") from None
    if expected != len(sources):
        raise NasferError(f"Ray returned {expected} records for {len(sources)} pictures")


def _check_local_outputs(cfg: Any, bulk: BulkConfig, sources: list[Source]) -> None:
    """ValueError before any work when --csv or a local --out names a local input (a picture or an @LIST file)
    or each other (the local backend's rule, `nasfer.runtime.outputs.check_outputs`; URIs are not compared)."""
    from ..commands.predict import list_files, planned_outputs
    from ..runtime.outputs import check_outputs
    from .sources import is_uri

    outputs = planned_outputs([], cfg)  # --csv (this backend refuses --annotate)
    outputs += [(f"--out {bulk.out}", bulk.out)] if bulk.out and not is_uri(bulk.out) else []
    lists = list_files(cfg.inputs)
    if outputs:  # the @LIST files are inputs too (before: --out list.csv replaced the list with the results)
        check_outputs(outputs, [s.location for s in sources if not s.filesystem and not s.missing] + lists)


def run(args: argparse.Namespace) -> int:
    """`nasfer predict --backend ray`: the local backend's outputs and exit status, plus `--out`."""
    from ..commands.predict import PredictConfig, emit_records, report
    from ..ray_session import ray_session

    cfg = config.from_args(PredictConfig, args).validate()
    bulk = config.from_args(BulkConfig, args).validate()
    for flag, value in (("--annotate", cfg.annotate), ("--strict", cfg.strict)):
        if value:
            raise ValueError(f"{flag} is not available with --backend ray (every picture gets a record; "
                             "errors are records with an 'error' field)")
    sources = list_sources(cfg.inputs)
    if not sources:
        print(f"nasfer predict: no images found in {', '.join(cfg.inputs)}", file=sys.stderr)
        return 1
    _check_local_outputs(cfg, bulk, sources)
    files = ModelFiles.read(cfg.model, cfg.detector_model)
    labels = next(json.loads(data)["labels"] for name, data in files.model.items() if name.endswith(".json"))
    sinks = [create_sink(bulk.out, labels)] if bulk.out else []
    try:
        with ray_session(bulk.address, bulk.ray_cpus) as ray:
            counts = emit_records(records(sources, cfg, bulk, files, ray), sources, labels, cfg, sinks)
    except BaseException as exc:  # an error or Ctrl-C: --out keeps its old file, the records go to .partial
        for sink in sinks:
            exc.add_note(sink.abandon())
        raise
    for sink in sinks:
        sink.close()
    return report(counts, len(sources), bulk.out or "")


__all__ = ["actor_count", "records", "run"]
