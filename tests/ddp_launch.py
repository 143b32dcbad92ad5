"""Run by torchrun in tests/test_ddp.py: `python -m nasfer` under an audit of what this rank writes.

With NASFER_TEST_AUDIT=PATH, rank 1 records every file it opens for writing, creates, renames or removes
(Python audit events, PEP 578) and, at exit, writes the list as JSON to PATH.<rank>. With
NASFER_TEST_INTERRUPT=K, every rank stops (exit status 9) at its K-th validation, as a kill would.
"""

import atexit
import json
import os
import runpy
import sys

RANK = int(os.environ.get("RANK", "0"))
writes: list[list[str]] = []
recording = {"on": True}


def audit(event: str, args: tuple) -> None:
    if not recording["on"]:
        return
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing and isinstance(path, (str, bytes, os.PathLike)):
            writes.append([event, os.fsdecode(path)])
    elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "shutil.rmtree"):
        writes.append([event, os.fsdecode(args[0])])


def dump() -> None:
    recording["on"] = False
    with open(f"{os.environ['NASFER_TEST_AUDIT']}.{RANK}", "w") as fh:
        json.dump(writes, fh)


if os.environ.get("NASFER_TEST_AUDIT") and RANK == 1:
    sys.addaudithook(audit)
    atexit.register(dump)

if os.environ.get("NASFER_TEST_INTERRUPT"):
    from nasfer.train import Trainer

    stop_at, calls, original = int(os.environ["NASFER_TEST_INTERRUPT"]), {"n": 0}, Trainer.validate

    def validate(self, model=None):
        calls["n"] += 1
        if calls["n"] == stop_at:
            os._exit(9)  # no clean-up, as a kill
        return original(self, model)

    Trainer.validate = validate

sys.argv = ["nasfer", *sys.argv[1:]]
runpy.run_module("nasfer", run_name="__main__", alter_sys=True)
