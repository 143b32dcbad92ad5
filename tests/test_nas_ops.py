"""Search space: every op keeps channels and maps H to ceil(H / stride), at even and odd sizes."""

import pytest
import torch

from nasfer.nas.genotype import OP_NAMES
from nasfer.nas.ops import OPS, FactorizedReduce, drop_path


def test_op_names_match_ops():
    assert tuple(OPS) == OP_NAMES
    assert len(OPS) == 13


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [12, 7])
def test_every_op_shape(name, stride, size):
    torch.manual_seed(0)
    op = OPS[name](8, stride, True)
    x = torch.randn(2, 8, size, size, requires_grad=True)
    y = op(x)
    expected = -(-size // stride)
    assert y.shape == (2, 8, expected, expected)
    y.sum().backward()
    assert x.grad is not None


def test_separable_conv_is_applied_twice_relu_first():
    sep = OPS["sep_conv_3x3"](4, 1, True)
    depthwise = [m for m in sep.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 4]
    assert len(depthwise) == 2
    kinds = [type(m).__name__ for m in sep.modules() if not list(m.children())]
    assert kinds == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"] * 2  # ReLU-conv-BN, twice (NASNet)


def test_identity_reduces_at_stride_2():
    assert isinstance(OPS["identity"](4, 1, True), torch.nn.Identity)
    assert isinstance(OPS["identity"](4, 2, True), FactorizedReduce)
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(4, 5)


def test_drop_path_zeroes_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(4000, 3, 2, 2)
    y = drop_path(x, 0.3)
    per_sample = y.flatten(1)
    assert set(per_sample.std(1).tolist()) == {0.0}  # a sample is kept or dropped as a whole
    assert abs(y.mean().item() - 1.0) < 0.05
    assert drop_path(x, 0.0) is x
