r"""A retraining campaign, end to end and resumable: searches, their winners and control architectures
retrained with one recipe on one split, exported (fp32, optionally int8), scored and timed; one JSON + tables.

Steps, in order, each skipped when its output is complete, so killing the script and running the same command
again continues where it stopped (a search resumes from its last finished child, a training from `last.pt`):

1. the shared split: `--split-file` in --train-flags, else drawn once as `nasfer train` draws it (seed
   `--split-seed`, the train flags' `--val-fraction`) into <work-dir>/splits.json; every search scores its
   children on its validation part and every model is selected and compared on the same validation images
   (the defaults, seed 0 and 0.1, give the shipped models' split: `--teacher default` never trained on them);
2. `nasfer search` per `--searches STRATEGY:SEED` (same --search-flags: budget, rungs, scheduler), in
   <work-dir>/search-<strategy>-s<seed>;
3. per job, in <work-dir>/train-<group>-s<seed>: `nasfer train` (the same --train-flags for every job; a
   search winner is trained from its best_arch.json with the search's seed, a control `arch[:width]` (a NASNet
   as `arch:N@F`) or a given architecture file `NAME=FILE.json` with each --control-seeds seed), with
   --keep-weights its best.pt without training state as weights.pt, `nasfer export` (model.onnx),
   with --quantize `nasfer export --quantize int8` (model-int8.onnx; a refusal by its validation-parity check
   is recorded), `nasfer evaluate` of each model on the validation images; then every model once on
   --test-split, after all models are made and validated, the score recorded in its card (`--record`), so
   benchmarks/model_table.py reads it there;
4. speed of every model (nasfer's ONNX Runtime engine: ms per face at batch 1 on one thread, faces/s at
   batch 64 on --threads; benchmarks/model_table.speed), all in one block at the end (the load average and the
   CPU are kept with each figure; a model timed on another CPU, before the campaign was carried, is timed again;
   `--remeasure-speed` times them all again on a quiet machine).

The result JSON (--out, the markdown beside it as .md) is rewritten after every step, with `complete: false`
and a status line until the end: per job the commands, validation accuracy (exported graph, no TTA: the figure
any choice is made on), test-split accuracy and macro-F1 (scored once per model, never used to choose),
parameters, multiply-adds, speed, int8 figures, search CPU-hours (measured CPU time); per group mean, sd and n;
the best job by validation accuracy and the fast-model choice (retrain_report.fast_choice). `--table RESULT.json`
prints the markdown. A work directory keeps its
data, split, search and train flags (campaign.json); jobs may be added, and the train flags may change until the
first training begins (the change is kept in campaign.json's `changes`). Issue 11 (search strategies compared
after retraining, several seeds, same budget and scheduler: Sciuto et al. 2020; Yang et al. 2020):

    python benchmarks/retrain.py --data ../shared/datasets/fer2013.zip --work-dir ~/nasfer-runs/issue11 \
        --searches reinforce:0 random:0 evolution:0 reinforce:1 random:1 evolution:1 \
        --search-flags "--budget-minutes 60 --threads 1 --calibration $PWD/benchmarks/results/proxy_calibration.json \
        --precision bf16" --search-jobs 2 \
        --controls vgg:16 mini-xception --control-seeds 0 1 --train-flags "--epochs 30 --threads 1 --precision fp32" \
        --train-jobs 2 --carry benchmarks/campaigns/issue11 --out benchmarks/results/search_strategies.json

A campaign outlives its machine with `--carry DIR` (benchmarks/retrain_carry.py): the small files of its work
directory kept in a folder to commit, and copied back into a work directory that lacks them. Issue 12's campaign
(the searched architecture and the controls distilled from the shipped model, and int8) is in the README.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import retrain_args
import retrain_carry as carry
import retrain_report as report
from common import cpu_identity
from retrain_jobs import CAMPAIGN_FILE, Campaign, Job, copy_sibling_teacher_cache, search_done, train_done
from retrain_parallel import run_parallel

ROOT = Path(__file__).resolve().parents[1]
#: --carry: seconds between copies of the work directory's small files while steps run.
CARRY_EVERY_S = 600.0


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


class Runner(Campaign):
    """The campaign's steps: in order, each knowing whether its output is complete and how to make it."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.started_at = time.time()  # --remeasure-speed: speeds measured before this run are timed again
        # speeds timed on another CPU, or one of the same name with other int8/bf16 flags (a carried campaign),
        # are timed again here
        self.cpu = cpu_identity()

    def steps(self) -> list["Step"]:
        """Split, searches, per job train / export / int8 / validation scores, every test score, every speed."""
        steps = [Step("shared split", None, self.split.is_file, self.draw_split)]
        # by seed first (reinforce:0 random:0 evolution:0 reinforce:1 ...): searches running side by side are of
        # different strategies, so a slow spell of the machine does not fall on one strategy's searches alone
        searches = sorted((job for job in self.jobs if job.kind == "search-winner"), key=lambda job: job.seed)
        steps += [self.search_step(job) for job in searches]
        for job in self.jobs:
            steps += self.model_steps(job)
        if self.args.publictest:  # the test split last: no test score exists while any model is still being made
            steps += [self.evaluate_step(job, variant, self.args.test_split)
                      for job in self.jobs for variant in self.variants()]
        return steps + [self.speed_step(job, variant) for job in self.jobs for variant in self.variants()]

    def variants(self) -> list[str]:
        return ["fp32"] + (["int8"] if self.args.quantize else [])

    def search_step(self, job: Job) -> "Step":
        out = self.search_dir(job)
        cfg = self.search_config(job)
        return Step(f"search {job.strategy} seed {job.seed}", job.name, lambda: search_done(out, cfg),
                    lambda: run_search(cfg), parallel=(run_search, cfg), pool="search")

    def model_steps(self, job: Job) -> list["Step"]:
        d = self.job_dir(job)
        exported = lambda: bool(report.read_json(d / "model.json"))  # noqa: E731
        # an exported job is trained, also where its checkpoints were not carried to this machine (--carry)
        steps = [Step(f"train {job.name}", job.name, lambda: train_done(d) or exported(), lambda: self.train(job),
                      parallel=(run_train, self.train_config(job), self.data_cfg), pool="train")]
        if self.args.keep_weights:  # before the export, after which the carry folder drops the checkpoints
            steps.append(Step(f"weights {job.name}", job.name, lambda: carry.weights_kept(d),
                              lambda: carry.keep_weights(d, log)))
        steps.append(Step(f"export {job.name}", job.name, exported, lambda: run_export(self.export_config(job, d))))
        if self.args.quantize:
            steps.append(Step(f"int8 {job.name}", job.name, lambda: bool(
                report.read_json(d / "model-int8.json") or report.read_json(d / report.INT8_REFUSED)),
                lambda: self.quantize(job, d)))
        return steps + [self.evaluate_step(job, variant, "val") for variant in self.variants()]

    def evaluate_step(self, job: Job, variant: str, split: str) -> "Step":
        d = self.job_dir(job)
        path = d / report.eval_file(variant, split)
        refused = variant == "int8" and (d / report.INT8_REFUSED)  # a refused int8 model: nothing to evaluate
        return Step(f"evaluate {job.name} {variant} on {split}", job.name,
                    lambda: path.is_file() or bool(refused and refused.is_file()),
                    lambda: self.evaluate(d, variant, split, path), test=split != "val")

    def speed_step(self, job: Job, variant: str) -> "Step":
        d = self.job_dir(job)
        return Step(f"speed {job.name} {variant}", job.name, lambda: self.speed_done(d, variant),
                    lambda: self.speed(d, variant))

    def train(self, job: Job) -> None:
        import torch

        cfg = self.train_config(job)
        torch.set_num_threads(cfg.threads or self.torch_threads)  # a search before may have set 1 thread
        run_train(cfg, self.data_cfg)

    def draw_split(self) -> None:
        """The shared split, drawn as `nasfer train` draws it (nasfer.training.data.plan_split), written atomically."""
        from nasfer.data.splits import sample_keys, write_split_file
        from nasfer.errors import DataError
        from nasfer.training.data import load_dataset, plan_split

        cfg = dataclasses.replace(self.train_cfg, seed=self.args.split_seed)
        dataset = load_dataset(cfg, self.data_cfg)
        names = dataset.split_names()
        if self.args.publictest and self.args.test_split.lower() not in {n.lower() for n in names}:
            raise DataError(f"--test-split {self.args.test_split}: {self.data} has no such split ({', '.join(names)})")
        keys = sample_keys(dataset.sources, self.data)
        tmp = self.split.with_name(self.split.name + ".tmp")
        write_split_file(tmp, keys, plan_split(dataset, cfg, keys), data=self.data, seed=cfg.seed,
                         val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, reused=None)
        tmp.replace(self.split)

    def export_config(self, job: Job, d: Path):
        from nasfer.export import ExportConfig

        return ExportConfig(checkpoint=str(d / "best.pt"), out=str(d / report.FP32_ONNX), name=job.name)

    def quantize(self, job: Job, d: Path) -> None:
        from nasfer.errors import ModelError
        from nasfer.export import ExportConfig

        cfg = ExportConfig(onnx=str(d / report.FP32_ONNX), out=str(d / report.INT8_ONNX), quantize="int8",
                           name=f"{job.name}-int8", calibration_data=self.data, split_file=str(self.split),
                           max_accuracy_drop=self.args.max_accuracy_drop)
        try:
            run_export(cfg)
        except ModelError as exc:
            if "int8 quantization refused" not in str(exc):
                raise
            report.write_json(d / report.INT8_REFUSED, {"refused": str(exc)})
            log(f"  {exc}")

    def evaluate(self, d: Path, variant: str, split: str, path: Path) -> None:
        """Scores one model; its test-split score is also recorded in its card (`nasfer evaluate --record`), once:
        a card that records it already (a run stopped between the card and the JSON) is scored again unrecorded."""
        from nasfer.evaluate import EvalConfig, to_json
        from nasfer.record import conflicting_splits
        from nasfer.runtime.engine import read_card

        model = d / report.VARIANTS[variant]
        recorded = conflicting_splits(read_card(model), split, dataset=self.data) if split != "val" else []
        if recorded:
            log(f"  {model.name}'s card already holds a {recorded[0]} score: scored again, not recorded again")
        record = split != "val" and not recorded
        cfg = EvalConfig(data=self.data, dataset=self.data_cfg.dataset, model=str(model), split=split,
                         split_file=str(self.split) if split == "val" else None, record=record)
        report.write_text(path, to_json(run_evaluate(cfg)) + "\n")

    def speed_done(self, d: Path, variant: str) -> bool:
        if variant == "int8" and (d / report.INT8_REFUSED).is_file():
            return True
        done = report.read_json(d / report.speed_file(variant))
        return bool(done) and (done["threads"], done["seconds"]) == (self.args.threads, self.args.speed_seconds) \
            and done.get("cpu", self.cpu) == self.cpu \
            and not (self.args.remeasure_speed and done["measured_at"] < self.started_at)

    def speed(self, d: Path, variant: str) -> None:
        t = run_speed(d / report.VARIANTS[variant], self.args.threads, self.args.speed_seconds)
        report.write_json(d / report.speed_file(variant), {
            "ms_per_face_b1": round(1e3 * t["s1"], 4), "faces_per_s_b64": round(64 / t["s64"], 1),
            "threads": self.args.threads, "seconds": self.args.speed_seconds, "cpu": self.cpu,
            "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "measured_at": time.time(),
            "cpu_per_wall": {k: round(v, 3) for k, v in t.items() if k.startswith("cpu_per_wall")},
            "method": "nasfer.runtime.engine.Classifier: batch 1 on 1 thread, batch 64 on `threads`; median "
                      "seconds per call over `seconds` after 2 warm-up calls (benchmarks/model_table.speed)"})


@dataclass
class Step:
    label: str
    job: str | None
    done: Callable[[], bool]
    run: Callable[[], None]
    parallel: tuple | None = None  # (module-level function, *arguments): may run in another process
    pool: str | None = None  # "search" or "train": steps of one pool run side by side (--search-jobs, --train-jobs)
    test: bool = False  # a test-split score: only once every model is made and validated


# The nasfer calls, one function each (tests count or interrupt them).
def run_search(cfg) -> None:
    from nasfer.nas.search import search

    search(cfg)


def run_train(cfg, data_cfg) -> None:
    from nasfer.train import fit

    if cfg.teacher:
        copy_sibling_teacher_cache(Path(cfg.out))
    fit(cfg, data_cfg)


def run_export(cfg) -> None:
    from nasfer.export import export_checkpoint

    export_checkpoint(cfg)


def run_evaluate(cfg) -> dict[str, Any]:
    from nasfer.evaluate import evaluate

    return evaluate(cfg)


def run_speed(path: Path, threads: int, seconds: float) -> dict[str, float]:
    from model_table import speed

    return speed(path, threads, seconds)


# ------------------------------------------------------------------------------------------------ driver
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return retrain_args.parse_args(argv, __doc__)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.table:
        table = report.read_json(Path(args.table))
        if not isinstance(table, dict) or table.get("benchmark") != "retrain":
            why = "no such file" if not Path(args.table).exists() else "not a result of benchmarks/retrain.py, or unreadable"
            raise SystemExit(f"--table {args.table}: {why}")
        print(report.markdown(table))
        if args.plot:
            from pareto import write_plot

            rows = report.pareto_rows(table)
            if not rows:
                raise SystemExit(f"--plot: no model of {args.table} has both a test score and a speed yet")
            split = (table.get("settings") or {}).get("test_split", "test")
            print("wrote", write_plot(rows, args.plot, title=f"Retrained models: {split} accuracy against latency"))
        return 0
    import torch

    campaign = Runner(args)
    campaign.check()
    campaign.torch_threads = torch.get_num_threads()
    command = "python benchmarks/retrain.py " + shlex.join(argv)
    if ROOT in campaign.work.parents or campaign.work == ROOT:
        log(f"note: --work-dir {campaign.work} is inside the repository; checkpoints and searches are large")
    from nasfer.runlock import RunLocked, run_lock

    if args.carry:
        try:
            carry.check_folder(Path(args.carry))
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    try:
        with run_lock(campaign.work, "campaign"):  # a second campaign on this work directory stops at once
            with run_lock(args.carry, "campaign") if args.carry else contextlib.nullcontext():  # and on a carry folder
                if args.carry:
                    carry.restore_campaign(campaign, Path(args.carry), log)
                changed = campaign.check_settings()
                if changed:
                    log(f"training flags changed before any training began ({'; '.join(changed)}): "
                        f"{campaign.work / CAMPAIGN_FILE} now holds the new ones")
                return run_campaign(campaign, args, command, changed)
    except RunLocked as exc:
        raise SystemExit(str(exc)) from None


def run_campaign(campaign: Runner, args: argparse.Namespace, command: str, changed: list[str] = ()) -> int:
    """Every step not yet done, in order; the result JSON rewritten after each. `changed`: the training flags
    that changed before any training began (`Campaign.check_settings`): campaign.json takes the new settings
    and command and keeps the old command with the changes in its `changes` list."""
    saved = report.read_json(campaign.work / CAMPAIGN_FILE)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    started = saved["date_started"] if saved else now
    if not saved or changed or saved.get("command") != command:  # the command that runs it now (--threads, ...)
        changes = (saved or {}).get("changes", []) + ([{"date": now, "previous_command": saved["command"],
                                                        "changed": list(changed)}] if saved and changed else [])
        report.write_json(campaign.work / CAMPAIGN_FILE,
                          {"command": command, "date_started": started, "settings": campaign.settings(),
                           **({"changes": changes} if changes else {})})
    from nasfer.interrupts import raise_if_terminated, sigterm_as_sigint

    steps = campaign.steps()
    # SIGTERM raises Terminated (a KeyboardInterrupt): a killed run still leaves its JSON saying where it stopped;
    # one whose exception Python dropped is raised again between steps and by run_parallel (raise_if_terminated)
    with sigterm_as_sigint():
        status = "starting"

        carrier = carry.Carrier(campaign.work, args.carry and Path(args.carry), log)
        carrier.save()  # a changed campaign.json goes into the carry folder before any job folder does

        def finished(step: Step) -> None:  # one of parallel steps: the others still run, carry this one only
            write()
            carrier.save([Path(step.parallel[1].out)])

        def write(complete: bool = False) -> str:
            out = report.campaign_result(campaign, steps, command, started, status, complete)
            table = report.markdown(out)
            report.write_json(Path(args.out), out)
            report.write_text(Path(args.out).with_suffix(".md"), table + "\n")
            return table

        failed: dict[str, str] = {}  # job -> why: its later steps are skipped, the other jobs go on
        try:
            with carrier.every(CARRY_EVERY_S):  # a search of an hour is carried while it runs
                for i, step in enumerate(steps, 1):
                    raise_if_terminated()
                    if step.job in failed or (step.test and failed):  # no test score while a model is still missing
                        log(f"[{i}/{len(steps)}] {step.label}: skipped ({', '.join(failed)} failed)")
                        continue
                    if step.done():
                        log(f"[{i}/{len(steps)}] {step.label}: done already")
                        continue
                    began = time.monotonic()
                    try:
                        width = {"search": args.search_jobs, "train": args.train_jobs}.get(step.pool, 1)
                        if step.parallel and width > 1:
                            batch = [s for s in steps if s.pool == step.pool and s.job not in failed and not s.done()]
                            noun = {"search": "searches", "train": "trainings"}[step.pool]
                            log(f"[{i}/{len(steps)}] {len(batch)} {noun}, {width} at a time ...")
                            for done_step, exc in run_parallel(batch, width, log, on_done=finished,
                                                               check_stop=raise_if_terminated):
                                failed[done_step.job] = f"{done_step.label}: {str(exc).splitlines()[0]}"
                            label = f"{len(batch)} {noun}" + (f" ({len(failed)} failed)" if failed else "")
                        else:
                            label = step.label
                            log(f"[{i}/{len(steps)}] {step.label} ...")
                            step.run()
                    except Exception as exc:  # noqa: BLE001  (one job's failure; the shared split's stops everything)
                        if step.job is None:
                            raise
                        failed.setdefault(step.job, f"{step.label}: {type(exc).__name__}: {exc}")
                        log(f"[{i}/{len(steps)}] {exc}; the later steps of {', '.join(failed)} and the test scores are skipped")
                    else:
                        log(f"[{i}/{len(steps)}] {label}: finished in {time.monotonic() - began:.0f} s")
                    status = f"step {i}/{len(steps)} finished: {step.label}" + (f"; failed: {failed}" if failed else "")
                    write()
                    carrier.save()
                    raise_if_terminated()
        except BaseException as exc:
            from nasfer.errors import NasferError

            status = f"stopped at step {i}/{len(steps)} ({step.label}): {type(exc).__name__}: {exc}"
            write()
            carrier.save()  # a stopped search has saved its state and time spent: carried, it resumes on the next machine
            if isinstance(exc, KeyboardInterrupt):
                raise SystemExit(f"interrupted at step {i}/{len(steps)} ({step.label}); {args.out} says how far it "
                                 "got; run the same command to continue") from None
            if isinstance(exc, (NasferError, ValueError)):
                raise SystemExit(f"error at step {i}/{len(steps)} ({step.label}): {exc}; fix it and run the same "
                                 "command to continue") from None
            raise
    if failed:
        status = "finished with failed jobs: " + "; ".join(failed.values())
        print(write())
        carrier.save()
        raise SystemExit(f"{len(failed)} job(s) failed ({'; '.join(failed.values())}); the others are done. Fix the "
                         "cause and run the same command to redo only what is missing")
    status = "complete"
    print(write(complete=True))
    carrier.save()
    log(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
