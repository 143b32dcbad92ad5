"""timm-style: every registered model builds, runs forward and backward, and reports its size."""

import pytest
import torch

from nasfer.errors import ModelError
from nasfer.models import create_model, list_models
from nasfer.models.baselines import count_flops, count_params


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).train()
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
