"""timm-style: every registered model builds, runs forward and backward, and reports its size."""

import pytest
import torch

from nasfer.errors import ModelError
from nasfer.models import create_model, list_models
from nasfer.models.baselines import count_flops, count_params


#: Models that cannot be built from defaults alone get example arguments here.
EXAMPLE_KWARGS = {
    "ensemble": {"members": [{"name": "vgg", "kwargs": {"width": 4, "num_classes": 5}},
                             {"name": "mini-xception", "kwargs": {"width": 4, "num_classes": 5}}]},
}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **EXAMPLE_KWARGS.get(name, {})).train()
    x = torch.randn(2, 1, 48, 48)
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (2, 5)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    assert count_params(model) > 0 and count_flops(model) > 0


def test_baseline_sizes():
    assert 1_000_000 < count_params(create_model("vgg")) < 1_400_000
    assert 40_000 < count_params(create_model("mini-xception")) < 80_000
    assert count_params(create_model("vgg", width=16)) < count_params(create_model("vgg"))


def test_unknown_model_lists_choices():
    with pytest.raises(ModelError, match="unknown model 'nope'; registered: .*vgg"):
        create_model("nope")


def test_ensemble_averages_member_probabilities(tmp_path):
    from nasfer.checkpoint import load_model, make_checkpoint, save_checkpoint
    from nasfer.errors import ModelError
    from nasfer.labels import EMOTIONS
    from nasfer.models.ensemble import ensemble_checkpoint
    from nasfer.preprocessing import Preprocessing

    paths = []
    for i, width in enumerate((4, 6)):
        torch.manual_seed(i)
        m = create_model("vgg", width=width)
        paths.append(tmp_path / f"m{i}.pt")
        save_checkpoint(paths[-1], make_checkpoint(model=m, model_name="vgg", model_kwargs={"width": width},
                                                   labels=EMOTIONS, preprocessing=Preprocessing()))
    save_checkpoint(tmp_path / "ens.pt", ensemble_checkpoint([str(p) for p in paths]))
    ens, _ = load_model(tmp_path / "ens.pt")
    members = [load_model(p)[0] for p in paths]
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
        assert torch.allclose(torch.softmax(ens(x), 1), expected, atol=1e-6)
    save_checkpoint(tmp_path / "other.pt", make_checkpoint(model=members[0], model_name="vgg",
                    model_kwargs={"width": 4}, labels=["a", "b"], preprocessing=Preprocessing()))
    with pytest.raises(ModelError, match="labels"):
        ensemble_checkpoint([str(paths[0]), str(tmp_path / "other.pt")])


def test_ensemble_card_says_how_to_reproduce_it():
    from nasfer.export import training_info

    member = {"train": {"arch": "vgg", "out": "/tmp/runs/a", "epochs": 3}, "data": {"data": "/x/fer2013.zip"}}
    info = training_info({"config": {"ensemble_of": ["a", "b"], "members": [member, member]}})
    assert info["commands"][:2] == ["nasfer train --data fer2013.zip --out a --epochs 3"] * 2
    assert info["commands"][2] == "nasfer ensemble --checkpoints a/best.pt a/best.pt --out ensemble.pt"


def test_ensemble_refuses_a_num_classes_its_members_do_not_have():
    members = EXAMPLE_KWARGS["ensemble"]["members"]
    assert create_model("ensemble", members=members, num_classes=5)(torch.zeros(1, 1, 48, 48)).shape == (1, 5)
    with pytest.raises(ValueError, match="num_classes=7, but member 0 \\(vgg\\) has num_classes=5"):
        create_model("ensemble", members=members, num_classes=7)
    # members that leave a setting out get the ensemble's: a 3-channel ensemble takes 3-channel input
    assert create_model("ensemble", members=members, in_channels=3)(torch.zeros(1, 3, 48, 48)).shape == (1, 5)
    with pytest.raises(ValueError, match="in_channels=1, but member 1"):
        create_model("ensemble", in_channels=1, members=[members[0], {**members[1], "kwargs": {
            **members[1]["kwargs"], "in_channels": 3}}])
