"""`nasfer` command line: thin dispatch to the subcommand modules in `nasfer.commands`.

Each module there defines NAME, HELP, `add_arguments(parser)` and `run(args) -> int`; they are
found by discovery, so adding a command never touches this file. Heavy imports stay inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import NasferError

#: Optional dependency (top-level module) -> the extra that installs it.
EXTRAS = {"torch": "train", "torchvision": "train", "onnx": "train", "onnxscript": "train", "matplotlib": "plots"}


def missing_extra_hint(exc: ImportError) -> str | None:
    """One line naming the extra to install when `exc` is a missing optional dependency, else None."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or name not in EXTRAS:
        return None
    return f"this needs {name}, which is not installed: pip install 'nasfer[{EXTRAS[name]}]'"


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasfer",
        description="Facial expression recognition: predict, train, search, evaluate, export, serve.",
    )
    parser.add_argument("--version", action="version", version=f"nasfer {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nasfer")
    except PackageNotFoundError:
        return "unknown"


def print_notes(command: str, exc: BaseException) -> None:
    """The exception's notes (PEP 678), one line each on stderr: e.g. where a stopped run left its records
    (`nasfer.atomic.staged_output`)."""
    for note in getattr(exc, "__notes__", ()):
        print(f"nasfer {command}: {note}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where a command handles it (nasfer.interrupts)
        from .interrupts import Terminated

        print("nasfer: stopped (SIGTERM)" if isinstance(exc, Terminated) else "nasfer: interrupted", file=sys.stderr)
        print_notes(args.command, exc)
        return 143 if isinstance(exc, Terminated) else 130  # 128 + the signal, as a shell reports it
    except BrokenPipeError as exc:  # `nasfer predict ... | head`: the reader has all it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        print_notes(args.command, exc)
        return 141  # 128 + SIGPIPE, what a shell reports for a killed writer
    except (NasferError, FileNotFoundError, ValueError) as exc:
        print(f"nasfer {args.command}: error: {exc}", file=sys.stderr)
        print_notes(args.command, exc)
        return 2
    except OSError as exc:  # the machine refused: a folder that is a file, no permission, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nasfer {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        print_notes(args.command, exc)
        return 2
    except ImportError as exc:
        hint = missing_extra_hint(exc)
        if hint is None:
            raise
        print(f"nasfer {args.command}: {hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
