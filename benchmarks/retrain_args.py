"""The command line of benchmarks/retrain.py: its flags, their defaults and help, and the checks made before any
work (bad seeds, thread counts, job counts and accuracy bounds end in a usage message)."""

from __future__ import annotations

import argparse


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The campaign's flags, checked (argparse exits with a usage message on a bad one); `description`: the
    help text above them (retrain.py's docstring)."""

    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    p = argparse.ArgumentParser(description=description, formatter_class=Formatter)
    p.add_argument("--data", help="dataset (fer2013.zip, or any dataset nasfer reads with a test split)")
    p.add_argument("--work-dir", help="where the searches and runs go (outside the repository: gigabytes)")
    p.add_argument("--searches", nargs="*", default=[], metavar="STRATEGY:SEED", help="searches whose winners "
                   "are retrained (with the search's seed), e.g. reinforce:0 random:0 evolution:0")
    p.add_argument("--search-flags", default="", help="extra `nasfer search` flags shared by every search, "
                   "e.g. \"--budget-minutes 120 --threads 1\" (a single flag: --search-flags=--no-progress)")
    p.add_argument("--controls", nargs="*", default=[], metavar="ARCH[:WIDTH]|ARCH:N@F|NAME=FILE.json",
                   help="control architectures retrained the same way: vgg:16 (alias vgg16), mini-xception, a NASNet "
                        "as N@F cells per stack @ width (nasnet-a-mobile:1@8), or an "
                        "architecture file (nasfer search's best_arch.json) as NAME=FILE.json")
    p.add_argument("--control-seeds", nargs="+", type=int, default=[0], help="training seeds of each control")
    p.add_argument("--train-flags", default="", help="extra `nasfer train` flags shared by every training, e.g. "
                   "\"--epochs 30 --threads 2 --teacher default\" (--split-file here is the shared split; a single flag: "
                   "--train-flags=--no-tta)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the shared split when --train-flags has no "
                   "--split-file (0: the split of `nasfer train`'s default seed, the shipped models' split)")
    p.add_argument("--search-jobs", type=int, default=1, help="searches run at the same time, each in its own "
                   "process (e.g. as many as cores, with --threads 1 in --search-flags)")
    p.add_argument("--train-jobs", type=int, default=1, help="trainings run at the same time, each in its own "
                   "process (e.g. as many as cores, with --threads 1 in --train-flags); their exports and "
                   "scores follow once they have all finished")
    p.add_argument("--quantize", action="store_true", help="also export each model as static int8 and report both")
    p.add_argument("--max-accuracy-drop", type=float, default=0.3, help="with --quantize: validation accuracy "
                   "points an int8 model may lose (nasfer export --max-accuracy-drop); a refusal is recorded")
    p.add_argument("--publictest", action=argparse.BooleanOptionalAction, default=True,
                   help="score every model once on --test-split (into the JSON and its card, as nasfer evaluate "
                        "--record does; never used to choose)")
    p.add_argument("--test-split", default="PublicTest", help="the test split's name in --data")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the batch-64 throughput "
                   "(batch 1 is always timed on 1 thread)")
    p.add_argument("--speed-seconds", type=float, default=3.0, help="seconds each speed measurement runs")
    p.add_argument("--remeasure-speed", action="store_true", help="time every model again (e.g. on a quiet machine)")
    p.add_argument("--out", help="result JSON, e.g. benchmarks/results/NAME.json (the markdown goes beside it)")
    p.add_argument("--carry", metavar="DIR", help="a folder to commit that carries the campaign to the next "
                   "machine: the work directory's small files (searches whole, trainings under way with their "
                   "checkpoints, exported models without; benchmarks/retrain_carry.py), updated after every step, "
                   "every 10 minutes and when stopped, "
                   "copied back into a work directory that lacks them at the start")
    p.add_argument("--keep-weights", action="store_true", help="after each export, keep the training's best.pt "
                   "without optimizer state as weights.pt, carried with the model (e.g. for members an ensemble is "
                   "chosen from later: benchmarks/default_candidates.py); a stopped campaign may be run again with it (for "
                   "trainings whose best.pt is on this machine)")
    p.add_argument("--table", metavar="RESULT.json", help="print the markdown tables of a result and exit")
    p.add_argument("--plot", metavar="PNG", help="with --table: also plot each model's test-split accuracy "
                   "against ms per face, its Pareto front marked (fp32 and int8 models; needs matplotlib)")
    args = p.parse_args(argv)
    if args.plot and not args.table:
        p.error("--plot goes with --table RESULT.json")
    if not args.table:
        missing = [f for f in ("data", "work_dir", "out") if not getattr(args, f)]
        if missing:
            p.error("the following arguments are required: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if min([*args.control_seeds, args.split_seed]) < 0:
        p.error(f"seeds must be >= 0 (as nasfer train wants), got --control-seeds {args.control_seeds} "
                f"--split-seed {args.split_seed}")
    for flag, value, low in (("--threads", args.threads, 0), ("--speed-seconds", args.speed_seconds, 1e-9),
                             ("--search-jobs", args.search_jobs, 1), ("--train-jobs", args.train_jobs, 1),
                             ("--max-accuracy-drop", args.max_accuracy_drop, 0)):
        if value < low:
            p.error(f"{flag} must be {'> 0' if low else '>= 0'}, got {value}")
    if args.max_accuracy_drop > 100:  # nasfer export's own bound, checked here before hours of training
        p.error(f"--max-accuracy-drop must be within 0..100 (accuracy points), got {args.max_accuracy_drop}")
    return args
