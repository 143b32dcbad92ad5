import pytest
import torch

from nasfer.checkpoint import load_checkpoint, load_model, make_checkpoint, save_checkpoint
from nasfer.cli import build_parser, main
from nasfer.errors import ModelError
from nasfer.labels import EMOTIONS
from nasfer.models import create_model
from nasfer.preprocessing import Preprocessing


def test_checkpoint_round_trip(tmp_path):
    model = create_model("vgg", width=4)
    ckpt = make_checkpoint(model=model, model_name="vgg", model_kwargs={"width": 4}, labels=EMOTIONS,
                           preprocessing=Preprocessing(mean=0.3), config={"k": 1}, epoch=3)
    save_checkpoint(tmp_path / "a.pt", ckpt)
    assert not (tmp_path / "a.pt.tmp").exists()
    loaded, meta = load_model(tmp_path / "a.pt")
    assert not loaded.training and meta["epoch"] == 3 and meta["preprocessing"]["mean"] == 0.3
    x = torch.randn(1, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x))


def test_bad_checkpoints_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ModelError, match="not a nasfer checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_every_command_has_help(capsys):
    parser = build_parser()
    names = sorted(parser._subparsers._group_actions[0].choices)
    assert {"train"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: nasfer " + name in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_strip_training_state_keeps_what_rebuilds_the_model(tmp_path):
    from nasfer.checkpoint import strip_training_state

    model = create_model("vgg", width=4)
    opt = torch.optim.AdamW(model.parameters())
    ckpt = make_checkpoint(model=model, model_name="vgg", model_kwargs={"width": 4}, labels=EMOTIONS,
                           preprocessing=Preprocessing(), optimizer=opt.state_dict(), epoch=1,
                           scheduler={"last_epoch": 1}, ema_state_dict={"module.x": torch.zeros(1)})
    slim = strip_training_state(ckpt)
    resume_only = {"optimizer", "scheduler", "ema_state_dict"}
    assert not resume_only & set(slim) and slim["epoch"] == 1 and resume_only <= set(ckpt)
    save_checkpoint(tmp_path / "slim.pt", slim)
    assert load_model(tmp_path / "slim.pt")[1]["labels"] == list(EMOTIONS)


def test_init_from_default_is_the_shipped_checkpoint():
    from nasfer.finetune import check_init_path
    from nasfer.weights import default_checkpoint_path, default_model_path

    path = check_init_path("default")
    assert path == default_checkpoint_path() and path.parent == default_model_path().parent
    model, ckpt = load_model(path)
    assert ckpt["labels"] == list(EMOTIONS) and "optimizer" not in ckpt


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_checkpoints_load_with_weights_only_and_code_is_refused(tmp_path):
    """Before: torch.load(weights_only=False) ran whatever a downloaded checkpoint's pickle said."""
    torch.save({"format": "nasfer-checkpoint/1", "payload": _RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="refused: .* could run code"):
        load_checkpoint(tmp_path / "evil.pt")
    # what nasfer writes stays loadable: the shipped checkpoint and a training one with optimizer state
    from nasfer.weights import default_checkpoint_path

    assert load_checkpoint(default_checkpoint_path())["labels"] == list(EMOTIONS)
    model = create_model("vgg", width=4)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1, 48, 48)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)
    ckpt = make_checkpoint(model=model, model_name="vgg", model_kwargs={"width": 4}, labels=EMOTIONS,
                           preprocessing=Preprocessing(), optimizer=opt.state_dict(),
                           scheduler=sched.state_dict(), rng=torch.get_rng_state(), history=[{"epoch": 1}])
    save_checkpoint(tmp_path / "run.pt", ckpt)
    assert load_checkpoint(tmp_path / "run.pt")["optimizer"]["state"]


BLOCK_TORCH = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
    del sys.modules[name]
from nasfer.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv", [["train", "--data", "x"], ["export", "--checkpoint", "CKPT", "--out", "y.onnx"],
                                  ["search", "--data", "x"], ["crossval", "--data", "x"],
                                  ["ensemble", "--checkpoints", "a.pt", "b.pt"], ["evaluate", "--data", "x",
                                                                                  "--model", "CKPT"]])
def test_without_torch_every_torch_command_prints_the_install_hint(argv, tmp_path):
    """Before: train, export, search, crossval and ensemble ended in a ModuleNotFoundError traceback."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "m.pt").write_bytes(b"x")
    argv = [str(tmp_path / "m.pt") if a == "CKPT" else a for a in argv]
    src = Path(__file__).resolve().parents[1] / "src"
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *argv], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install 'nasfer[train]'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_help_keeps_example_line_breaks_and_prints_no_empty_defaults(capsys):
    for name in ("train", "search", "crossval", "ensemble", "predict", "video"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert "(default: )" not in out and "(default: [])" not in out and "(default: ())" not in out, name
        if "Examples" in out:
            examples = out.split("Examples", 1)[1].split("options:", 1)[0]
            assert all(len(line) < 120 for line in examples.splitlines()), (name, examples)
            assert examples.count("\n  nasfer ") >= 2, name
