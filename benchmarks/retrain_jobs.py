"""The plan of a retraining campaign (benchmarks/retrain.py): its jobs, their directories and nasfer configs.

`--search-flags` / `--train-flags` are parsed with the flag tables of `nasfer search` / `nasfer train`
(`nasfer.config.add_arguments` over `SearchConfig`, `DataConfig` and `TrainConfig`), so a typo fails at the
start; the flags each job sets itself (data, output directory, seed, architecture, split) are refused there.
`Campaign.check()` runs every other check that can fail before the first hour of work.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import retrain_report as report

CAMPAIGN_FILE = "campaign.json"
#: Flags each job sets itself; in --search-flags / --train-flags they are an error.
SEARCH_PER_JOB = ("data", "out", "strategy", "seed", "split_file")
TRAIN_PER_JOB = ("data", "arch", "genotype", "width", "cells", "out", "seed")
ALIASES = {"vgg16": "vgg:16"}
#: Training flags that shape the shared split (drawn once, before the searches): never changed in a campaign.
SPLIT_FLAGS = ("val_fraction", "test_fraction", "limit", "label_set")


class _FlagParser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line instead of argparse's usage and exit status 2
        raise SystemExit(f"{self.prog}: {message} ({self.epilog})")


def parse_flags(text: str, prog: str, command: str, classes: list[tuple[type, tuple[str, ...]]]) -> list[Any]:
    """Configs of `classes` (dataclass, excluded fields) from a flag string, parsed with `nasfer COMMAND`'s own
    flag table (nasfer.config.add_arguments; no abbreviations); SystemExit naming the bad flag."""
    from nasfer import config

    excluded = ", ".join(sorted({"--" + f.replace("_", "-") for _, ex in classes for f in ex}))
    parser = _FlagParser(prog=prog, add_help=False, allow_abbrev=False,
                         epilog=f"give flags of `nasfer {command}` except {excluded}, which each job sets itself")
    for cls, exclude in classes:
        config.add_arguments(parser, cls, exclude=exclude)
    try:
        args = parser.parse_args(shlex.split(text))
    except ValueError as exc:  # shlex: unbalanced quotes
        raise SystemExit(f"{prog}: {exc}") from None
    return [config.from_args(cls, args) for cls, _ in classes]


#: Training flags that change how fast a training runs, not what it learns: a campaign may change them at any
#: time, as `nasfer train` lets a resumed run change them (nasfer.training.checks.RESUMABLE), e.g. to continue its
#: trainings on a GPU (`--device cuda`) or on more cores.
SPEED_ONLY = ("threads", "device")


def _speed_free(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` without what only changes speed: `SPEED_ONLY` flags in the training flags' `explicit` list and
    values (a campaign's saved settings from before they were left out compare equal)."""
    train = settings.get("train")
    if not isinstance(train, dict):
        return settings
    return {**settings, "train": {**{k: v for k, v in train.items() if k not in SPEED_ONLY},
                                  "explicit": [f for f in train.get("explicit") or [] if f not in SPEED_ONLY]}}


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 30}} -> {"train.epochs": 30}, for naming what changed."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


@dataclass(frozen=True)
class Job:
    """One model to train. kind: search-winner (of `strategy`), control (`arch`, `width`, NASNet `cells`) or
    genotype (a file)."""

    kind: str
    group: str
    seed: int
    strategy: str | None = None
    arch: str | None = None
    width: int = 0
    cells: int = 0
    genotype: str | None = None

    @property
    def name(self) -> str:
        return f"{self.group}-s{self.seed}"


def parse_control(text: str) -> dict[str, Any]:
    """`arch[:width]` (e.g. vgg:16, mini-xception; alias vgg16), a NASNet as `arch:N@F` (N cells per stack at
    width F, the paper's notation: nasnet-a-mobile:1@8) or `NAME=FILE.json` (an architecture file)."""
    from nasfer.errors import NasferError
    from nasfer.models import list_models
    from nasfer.nas.space import model_from_file

    text = ALIASES.get(text, text)
    if "=" in text or text.endswith(".json"):
        name, _, path = text.rpartition("=")
        path = str(Path(path).expanduser().resolve())
        try:
            model_from_file(path)
        except (NasferError, ValueError) as exc:
            raise SystemExit(f"--controls {text}: {exc}") from None
        return {"kind": "genotype", "group": name or Path(path).parent.name, "genotype": path}
    arch, _, size = text.partition(":")
    if arch not in list_models():
        raise SystemExit(f"--controls {text}: unknown architecture {arch!r}; registered: {', '.join(list_models())}")
    cells, at, width = size.rpartition("@")
    if at and not arch.startswith("nasnet"):
        raise SystemExit(f"--controls {text}: N@F (cells per stack @ width) is for NASNet models; write {arch}:WIDTH")
    if (width or at) and not (width.isdigit() and int(width) > 0):
        raise SystemExit(f"--controls {text}: the width after ':' (F in N@F) must be a positive integer")
    if at and not (cells.isdigit() and int(cells) > 0):
        raise SystemExit(f"--controls {text}: the N in N@F must be a positive integer")
    if at:
        return {"kind": "control", "group": f"{arch}-{cells}@{width}", "arch": arch, "width": int(width),
                "cells": int(cells)}
    return {"kind": "control", "group": f"{arch}{width}", "arch": arch, "width": int(width or 0)}


def parse_search(text: str) -> tuple[str, int]:
    import typing

    from nasfer.nas.config import SearchConfig

    strategies = typing.get_args(typing.get_type_hints(SearchConfig)["strategy"])
    strategy, _, seed = text.partition(":")
    if strategy not in strategies or not seed.isdigit():
        raise SystemExit(f"--searches {text}: write STRATEGY:SEED with STRATEGY one of {', '.join(strategies)} "
                         "and SEED >= 0")
    return strategy, int(seed)


class Campaign:
    """The jobs of a campaign, their directories and nasfer configs, and the settings they all share."""

    def __init__(self, args: argparse.Namespace):
        from nasfer.config import DataConfig, TrainConfig
        from nasfer.nas.config import SearchConfig

        self.args = args
        self.data = str(Path(args.data).expanduser().resolve())
        self.work = Path(args.work_dir).expanduser().resolve()
        (self.search_cfg,) = parse_flags(args.search_flags, "--search-flags", "search", [(SearchConfig, SEARCH_PER_JOB)])
        self.data_cfg, self.train_cfg = parse_flags(args.train_flags, "--train-flags", "train",
                                                    [(DataConfig, ("data",)), (TrainConfig, TRAIN_PER_JOB)])
        self.data_cfg = dataclasses.replace(self.data_cfg, data=self.data)
        self.split = Path(self.train_cfg.split_file).expanduser().resolve() if self.train_cfg.split_file \
            else self.work / "splits.json"
        jobs = [Job("search-winner", s, seed, strategy=s) for s, seed in map(parse_search, args.searches)]
        for control in map(parse_control, args.controls):
            jobs += [Job(seed=seed, **control) for seed in args.control_seeds]
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise SystemExit(f"the same job twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
        kinds = {}
        for j in jobs:
            if kinds.setdefault(j.group, j.kind) != j.kind:
                raise SystemExit(f"group {j.group!r} names both a {kinds[j.group]} and a {j.kind}: rename one")
        if not jobs:
            raise SystemExit("nothing to do: give --searches STRATEGY:SEED and/or --controls")
        self.jobs = jobs
        self.torch_threads = 0

    def check(self) -> None:
        """Everything that can be wrong before hours of work: data, flag values, teacher, split (the work
        directory's saved settings: `check_settings`)."""
        from nasfer.config import apply_preset
        from nasfer.errors import NasferError
        from nasfer.nas.results import rung_calibration
        from nasfer.nas.search import check_config

        if not Path(self.data).exists():
            raise SystemExit(f"--data {self.args.data}: not found")
        if self.args.test_split.lower() in ("train", "training", "val", "valid", "validation", "unused"):
            raise SystemExit(f"--test-split {self.args.test_split}: that is not a test split")
        try:
            for job in (j for j in self.jobs if j.kind == "search-winner"):  # each strategy's own checks too
                check_config(dataclasses.replace(self.search_cfg, strategy=job.strategy, seed=job.seed))
            if any(j.kind == "search-winner" for j in self.jobs):
                rung_calibration(self.search_cfg.calibration, list(self.search_cfg.rungs))
            apply_preset(self.train_cfg).validate()
            if self.train_cfg.teacher:
                from nasfer.distill import resolve_teacher

                resolve_teacher(self.train_cfg.teacher)
            if self.train_cfg.init_from:
                from nasfer.finetune import check_init_path

                check_init_path(self.train_cfg.init_from)
            if self.args.train_jobs > 1 and not self.train_cfg.threads:
                raise ValueError(f"--train-jobs {self.args.train_jobs}: give each training its threads in "
                                 "--train-flags (e.g. --threads 1), or every one of them uses all cores")
            if self.train_cfg.split_file:
                from nasfer.data.splits import read_split_file

                read_split_file(self.split)
        except (NasferError, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from None

    def check_settings(self, folder: Path | None = None, fix: str = "or use a new --work-dir") -> list[str]:
        """The settings that differ from those `folder` (default: the work directory; else a --carry folder)
        holds, as 'KEY: OLD -> NEW': only training flags (`train.*`) may differ, and only while no training of
        the campaign has begun (`trainings_begun`, in `folder` and the work directory): nothing trained is then
        made with other flags. Any other difference: SystemExit naming each one."""
        folder = folder or self.work
        saved = report.read_json(folder / CAMPAIGN_FILE)
        now = json.loads(json.dumps(self.settings()))
        before = _speed_free(saved.get("settings") or {}) if saved else None
        if before is None or before == now:
            return []
        old, new = _flat(before), _flat(now)
        changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed]
        begun = trainings_begun(folder) + trainings_begun(self.work)
        trainable = all(k.startswith("train.") and k.split(".")[1] not in SPLIT_FLAGS for k in changed)
        if trainable and not begun:
            return diffs
        why = (f"; the training flags may change only before the first training begins ({', '.join(sorted(set(begun)))} "
               "began)" if begun and trainable else "")
        raise SystemExit(f"{folder} holds a campaign with other settings ({'; '.join(diffs)}){why}; run it with its own "
                         f"command ({saved['command']}) {fix} (jobs may be added, settings not)")

    # -- configs and directories
    def job_dir(self, job: Job) -> Path:
        return self.work / f"train-{job.name}"

    def search_dir(self, job: Job) -> Path | None:
        return self.work / f"search-{job.strategy}-s{job.seed}" if job.kind == "search-winner" else None

    def search_config(self, job: Job):
        return dataclasses.replace(self.search_cfg, data=self.data, out=str(self.search_dir(job)),
                                   strategy=job.strategy, seed=job.seed, split_file=str(self.split))

    def train_config(self, job: Job):
        genotype = str(self.search_dir(job) / "best_arch.json") if job.kind == "search-winner" else job.genotype
        # best_arch.json of a NASNet search holds the cells only: its F and N are the search's --filters/--cells
        searched = ({"width": self.search_cfg.F, "cells": self.search_cfg.N}
                    if job.kind == "search-winner" and self.search_cfg.space == "nasnet" else {})
        return dataclasses.replace(self.train_cfg, out=str(self.job_dir(job)), seed=job.seed, split_file=str(self.split),
                                   genotype=genotype, **searched,
                                   **({"arch": job.arch, "width": job.width, "cells": job.cells} if job.arch else {}))

    def settings(self) -> dict[str, Any]:
        """What makes the jobs comparable: data, split, search and training flags, int8 acceptance. A work directory
        keeps them; jobs, --quantize, --test-split, the speed flags and the trainings' --threads and --device
        (`SPEED_ONLY`) may change between runs (they add steps, or change only how fast they run)."""
        from nasfer.config import to_dict

        def shared(cfg, per_job):
            return {k: v for k, v in to_dict(cfg).items() if k not in per_job}

        return _speed_free({"data": self.data, "split_file": str(self.split), "split_seed": self.args.split_seed,
                "search": shared(self.search_cfg, SEARCH_PER_JOB + ("progress",)),
                "data_config": shared(self.data_cfg, ("data",)),
                # a training's threads and device change its speed, not its result: a campaign may continue on more
                # cores or on a GPU
                "train": shared(self.train_cfg, TRAIN_PER_JOB + ("split_file",) + SPEED_ONLY),
                "max_accuracy_drop": self.args.max_accuracy_drop})

    def spec(self, job: Job) -> dict[str, Any]:
        from nasfer.record import command_line

        search_dir = self.search_dir(job)
        return {"name": job.name, "kind": job.kind, "group": job.group, "seed": job.seed, "strategy": job.strategy,
                "arch": job.arch, "width": job.width or None,
                "cells": job.cells or None, "genotype": self.train_config(job).genotype,
                "dir": str(self.job_dir(job)), "search_dir": str(search_dir) if search_dir else None,
                "search_command": command_line("search", self.search_config(job)) if search_dir else None,
                "train_command": command_line("train", self.data_cfg, self.train_config(job))}


def search_done(out: Path, cfg) -> bool:
    """Whether `out` holds a finished search with `cfg`'s settings (a search left from other settings is not
    taken for this one: running it then stops with nasfer search's own error naming the difference)."""
    from nasfer.config import to_dict
    from nasfer.nas.search import RESUMABLE_CHANGES

    summary = report.read_json(out / "summary.json")
    if not summary or not (out / "best_arch.json").is_file():
        return False
    saved, now = summary.get("config") or {}, json.loads(json.dumps(to_dict(cfg)))
    return all(saved.get(k) == v for k, v in now.items() if k not in RESUMABLE_CHANGES)


def trainings_begun(folder: Path) -> list[str]:
    """The training folders (`train-*`) in `folder` (a work directory or a --carry folder) with a finished
    epoch or more (a checkpoint, a history or an exported model)."""
    folder = Path(folder)
    marks = ("last.pt", "best.pt", "history.json", "model.json")
    return sorted(d.name for d in folder.glob("train-*") if d.is_dir() and any((d / m).is_file() for m in marks))


def train_done(run_dir: Path) -> bool:
    """Whether a `nasfer train` run has all its epochs (config.json holds the resolved --epochs)."""
    config, history = report.read_json(run_dir / "config.json"), report.read_json(run_dir / "history.json")
    return bool(config and history is not None and (run_dir / "best.pt").is_file()
                and len(history) >= config["train"]["epochs"])


def copy_sibling_teacher_cache(run_dir: Path) -> Path | None:
    """Before a distilled training (`--teacher`) starts in `run_dir`: a copy of a sibling training's teacher
    outputs (`train-*/teacher_cache.npz` of the same work directory, the newest), unless `run_dir` has its own;
    the path copied from, or None. nasfer train reuses it only where its key (teacher SHA-256, labels, training
    images) matches, else recomputes it, so a campaign's trainings that start after one has computed the teacher's
    outputs do not compute them again (about 5 minutes of one core each for the default on FER2013; trainings
    started side by side before that each compute them). The newest copy is taken: within one campaign all have
    the same key."""
    import shutil

    from nasfer.distill import CACHE_NAME

    run_dir = Path(run_dir)
    if (run_dir / CACHE_NAME).is_file():
        return None
    siblings = [p for p in run_dir.parent.glob(f"train-*/{CACHE_NAME}") if p.parent != run_dir]
    if not siblings:
        return None
    source = max(siblings, key=lambda p: p.stat().st_mtime)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (CACHE_NAME + ".seed.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(run_dir / CACHE_NAME)
    return source
