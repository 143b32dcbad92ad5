"""NASNet networks: every registered NASNet trains and infers, aux head and drop-path behave, checkpoints rebuild."""

import json

import pytest
import torch

from nasfer.checkpoint import build_model, make_checkpoint
from nasfer.errors import ModelError
from nasfer.models import create_model, list_models
from nasfer.models.baselines import count_flops, count_params
from nasfer.nas.cells import Cell
from nasfer.nas.genotype import NASNET_A, Genotype
from nasfer.preprocessing import Preprocessing

NASNETS = [name for name in list_models() if name.startswith("nasnet")]
TINY = Genotype(normal=[(0, "conv_1x3_3x1", 1, "max_pool_5x5"), (2, "dil_conv_3x3", 1, "conv_1x1")],
                reduction=[(0, "max_pool_7x7", 1, "identity"), (2, "conv_3x3", 0, "sep_conv_7x7")])


def test_registered():
    assert set(NASNETS) == {"nasnet", "nasnet-a-mobile", "nasnet-a-large"}


@pytest.mark.parametrize("name", NASNETS)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).train()
    x = torch.randn(2, 1, 48, 48)
    logits = model(x)
    assert logits.shape == (2, 5)  # no aux head unless asked for
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 5)


def test_aux_head_only_in_training_and_drop_path():
    torch.manual_seed(0)
    model = create_model("nasnet", genotype=TINY.to_dict(), F=4, N=1, aux=True, drop_path=0.3, num_classes=3)
    x = torch.randn(4, 1, 48, 48)
    logits, aux = model.train()(x)
    assert logits.shape == aux.shape == (4, 3)
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        out = model(x)
        assert isinstance(out, torch.Tensor) and torch.equal(out, model(x))  # no drop-path at eval


def test_sizes_and_speed_order():
    mobile, large = create_model("nasnet-a-mobile"), create_model("nasnet-a-large")
    assert 200_000 < count_params(mobile) < 600_000
    assert count_flops(mobile) < 60e6 < 1e9 < count_flops(large)
    assert count_params(create_model("nasnet")) == count_params(mobile)  # same default size: fair comparison


def test_genotype_kwargs_stay_json_safe_and_rebuild(tmp_path):
    kwargs = {"genotype": TINY.to_dict(), "F": 4, "N": 1, "num_classes": 7, "in_channels": 1}
    json.dumps(kwargs)
    model = create_model("nasnet", **kwargs).eval()
    ckpt = make_checkpoint(model=model, model_name="nasnet", model_kwargs=kwargs, labels=list("abcdefg"),
                           preprocessing=Preprocessing())
    rebuilt = build_model(ckpt)
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model(x))
    assert model.genotype == TINY
    assert create_model("nasnet", genotype=TINY, F=4, N=1).genotype == TINY


def test_bad_arguments_are_model_errors():
    with pytest.raises(ModelError, match="even filter count"):
        create_model("nasnet", F=5)
    with pytest.raises(ModelError, match="genotype must be a Genotype or its dict"):
        create_model("nasnet", genotype="best_genotype.json")
    with pytest.raises(ModelError, match="normal block 0"):
        create_model("nasnet", genotype={"normal": [[0, "nope", 1, "identity"]], "reduction": [[0, "identity", 1, "identity"]]})


def test_cell_reduces_and_concatenates():
    cell = Cell(NASNET_A.reduction, 12, 12, 8, reduction=True, reduction_prev=False)
    out = cell(torch.randn(2, 12, 10, 10), torch.randn(2, 12, 10, 10))
    assert out.shape == (2, 3 * 8, 5, 5) and cell.multiplier == 3
    after = Cell(NASNET_A.normal, 12, 24, 8, reduction=False, reduction_prev=True)  # h[i-2] is twice the size
    assert after(torch.randn(2, 12, 10, 10), torch.randn(2, 24, 5, 5)).shape == (2, 5 * 8, 5, 5)


def test_child_training_uses_the_memory_format_of_nasfer_train(monkeypatch):
    """Fault 6: the search's children train in the memory format nasfer train chooses."""
    import numpy as np

    from nasfer import train
    from nasfer.nas.data import SearchData
    from nasfer.nas.fidelity import Fidelity, Recipe, train_child
    from nasfer.nas.macro import mini_xception_spec

    formats = []
    real = train.memory_format_for
    monkeypatch.setattr(train, "memory_format_for", lambda m, p: formats.append(real(m, p)) or formats[-1])
    rng = np.random.default_rng(0)
    data = SearchData(rng.integers(0, 255, (20, 48, 48), dtype=np.uint8), np.arange(20) % 7,
                      rng.integers(0, 255, (14, 48, 48), dtype=np.uint8), np.arange(14) % 7, tuple("abcdefg"))
    for width, precision, fmt in ((16, "fp32", torch.channels_last), (16, "bf16", torch.contiguous_format),
                                  (4, "fp32", torch.contiguous_format)):  # width 4 in channels_last: heap corrupted
        formats.clear()
        acc = train_child("macro", {"spec": mini_xception_spec(width)}, data, Fidelity.parse("2s@16"),
                          recipe=Recipe(batch_size=8, precision=precision))
        assert formats == [fmt] and 0.0 <= acc <= 1.0
