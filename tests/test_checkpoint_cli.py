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
                           preprocessing=Preprocessing(), optimizer=opt.state_dict(), epoch=1)
    slim = strip_training_state(ckpt)
    assert "optimizer" not in slim and slim["epoch"] == 1 and "optimizer" in ckpt
    save_checkpoint(tmp_path / "slim.pt", slim)
    assert load_model(tmp_path / "slim.pt")[1]["labels"] == list(EMOTIONS)


def test_init_from_default_is_the_shipped_checkpoint():
    from nasfer.finetune import check_init_path
    from nasfer.weights import default_checkpoint_path, default_model_path

    path = check_init_path("default")
    assert path == default_checkpoint_path() and path.parent == default_model_path().parent
    model, ckpt = load_model(path)
    assert ckpt["labels"] == list(EMOTIONS) and "optimizer" not in ckpt
