import argparse
from dataclasses import dataclass, fields
from typing import Literal, Optional

import numpy as np
import pytest
import torch

from nasfer.config import DataConfig, TrainConfig, add_arguments, from_args, option
from nasfer.data.augment import Augment
from nasfer.preprocessing import Preprocessing, normalize, normalize_tensor


def test_numpy_and_torch_normalisation_are_identical():
    spec = Preprocessing(mean=0.4, std=0.3)
    imgs = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    a = normalize(imgs, spec)
    b = normalize_tensor(torch.from_numpy(imgs), spec).numpy()
    assert a.shape == b.shape == (5, 1, 48, 48) and a.dtype == b.dtype == np.float32
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="48x48"):
        normalize(np.zeros((1, 40, 40), np.uint8), spec)


def test_every_config_field_is_a_flag_and_round_trips():
    parser = argparse.ArgumentParser()
    add_arguments(parser, DataConfig)
    add_arguments(parser, TrainConfig)
    args = parser.parse_args(["--data", "x.zip", "--arch", "resnet18", "--no-flip", "--step-milestones", "3", "7",
                              "--optimizer", "sgd", "--genotype", "g.json"])
    train = from_args(TrainConfig, args)
    assert (train.arch, train.flip, train.step_milestones, train.optimizer, train.genotype) == (
        "resnet18", False, (3, 7), "sgd", "g.json")
    assert from_args(DataConfig, args).data == "x.zip"
    flags = {a.dest for a in parser._actions}
    assert {f.name for f in fields(TrainConfig) if f.metadata.get("cli") is not False} <= flags
    assert train.explicit == ("arch", "flip", "genotype", "optimizer", "step_milestones")  # what the user gave
    with pytest.raises(SystemExit):
        parser.parse_args(["--optimizer", "adam"])  # Literal -> choices


def test_option_helpers_on_a_custom_config():
    @dataclass
    class Demo:
        name: Optional[str] = option(None, "a name")
        mode: Literal["a", "b"] = option("a", "mode")
        sizes: list[int] = option([1, 2], "sizes")

    parser = argparse.ArgumentParser()
    add_arguments(parser, Demo)
    demo = from_args(Demo, parser.parse_args(["--mode", "b", "--sizes", "4"]))
    assert demo == Demo(name=None, mode="b", sizes=[4])
    assert "mode (default: a)" in parser.format_help()


def test_augment_is_seeded_and_flip_mirrors():
    x = torch.arange(48 * 48, dtype=torch.float32).reshape(1, 1, 48, 48).repeat(8, 1, 1, 1)
    aug = Augment(crop_padding=4, flip=True, rotation=10, scale=0.1, cutout=8)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    only_flip = Augment(crop_padding=0, flip=True, rotation=0, scale=0, cutout=0)
    out = only_flip(x, torch.Generator().manual_seed(0))
    for img in out:
        assert torch.allclose(img, x[0], atol=1e-3) or torch.allclose(img, torch.flip(x[0], dims=[2]), atol=1e-3)
    assert Augment(0, False, 0, 0, 0).is_identity


def test_to_flags_is_the_inverse_of_add_arguments():
    import argparse

    from nasfer.config import DataConfig, TrainConfig, add_arguments, from_args, to_dict, to_flags

    cfg = TrainConfig(width=16, flip=False, step_milestones=(5, 9), teacher="default", epochs=3)
    flags = to_flags(to_dict(cfg), TrainConfig)  # from JSON (tuples as lists) as from the dataclass
    assert flags == to_flags({f: getattr(cfg, f) for f in to_dict(cfg)}, TrainConfig)
    assert "--no-flip" in flags and flags[flags.index("--step-milestones") + 1:][:2] == ["5", "9"]
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    assert from_args(TrainConfig, parser.parse_args(flags)) == cfg
    assert to_flags(to_dict(DataConfig()), DataConfig) == []
