"""Search spaces as declarations: the hand designs are points of the macro space, every sampled
network builds and trains a step, specs round-trip, mutation changes the architecture."""

import json
import random

import pytest
import torch

from nasfer.errors import ModelError
from nasfer.models import create_model
from nasfer.models.baselines import count_params
from nasfer.nas.genotype import NASNET_A, Genotype
from nasfer.nas.macro import check_spec, mini_xception_spec, vgg_spec
from nasfer.nas.space import make_space, model_from_file, spec_key


@pytest.mark.parametrize("name,kwargs,spec", [
    ("vgg", {"width": 16}, vgg_spec(16)),
    ("vgg", {"width": 32}, vgg_spec(32)),
    ("mini-xception", {}, mini_xception_spec()),
])
def test_hand_designs_are_points_of_the_macro_space(name, kwargs, spec):
    space = make_space("macro")
    values = space.encode(spec)  # a ModelError if the design were outside the grid
    assert space.decode(values) == spec
    torch.manual_seed(0)
    reference, macro = create_model(name, **kwargs), create_model("macro", spec=space.decode(values))
    assert count_params(reference) == count_params(macro)
    ref_state, macro_state = reference.state_dict(), macro.state_dict()
    assert [v.shape for v in ref_state.values()] == [v.shape for v in macro_state.values()]
    # same layers in the same order: the reference's weights give the macro net the same function
    macro.load_state_dict(dict(zip(macro_state, ref_state.values())))
    reference.eval(), macro.eval()
    x = torch.randn(2, 1, 48, 48)
    assert torch.allclose(reference(x), macro(x), atol=1e-5)


def test_every_sampled_macro_network_builds_and_trains_a_step():
    space = make_space("macro", blocks=2)
    rng = random.Random(0)
    for _ in range(12):
        spec = space.decode(space.sample(rng))
        model = create_model("macro", spec=spec, num_classes=7)
        for size in (24, 48):
            out = model(torch.randn(2, 1, size, size))
            assert out.shape == (2, 7)
            out.logsumexp(1).sum().backward()
        # the stem gets gradients through every stage (unread NASNet cell inputs may not: as in NASNet)
        assert model.stem[0][0].weight.grad.abs().sum() > 0
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_decode_encode_round_trip_and_canonical_keys():
    for name in ("macro", "nasnet"):
        space = make_space(name, blocks=3)
        rng = random.Random(1)
        for _ in range(20):
            values = space.sample(rng)
            spec = space.decode(values)
            assert space.decode(space.encode(spec)) == spec
            assert space.key(space.encode(spec)) == space.key(values) == spec_key(spec)
    macro = make_space("macro")
    values = list(macro.encode(vgg_spec(16)))
    kernel = [d.name for d in macro.decisions].index("stage0.kernel")
    values[kernel] = 2  # a plain stage ignores the kernel: same architecture, same key
    assert macro.key(values) == macro.key(macro.encode(vgg_spec(16)))


def test_mutation_changes_exactly_the_architecture():
    space = make_space("macro", blocks=2)
    rng = random.Random(0)
    for _ in range(30):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        assert space.key(child) != space.key(parent)
        assert sum(a != b for a, b in zip(parent, child)) == 1


def test_nasnet_space_decodes_genotypes_built_at_training_depth():
    space = make_space("nasnet", blocks=5, F=8, N=2)
    assert len(space.decisions) == 40 and space.decode(space.encode(NASNET_A.to_dict())) == NASNET_A.to_dict()
    name, kwargs = space.model(NASNET_A.to_dict())
    assert name == "nasnet" and kwargs["N"] == 2 and kwargs["F"] == 8
    net = create_model(name, **kwargs)
    assert sum(1 for c in net.cells if not c.reduction) == 6  # N = 2 normal cells per stack, as retrained


def test_spec_files_build_the_registered_model(tmp_path):
    (tmp_path / "vgg.json").write_text(json.dumps(vgg_spec(16)))
    assert model_from_file(tmp_path / "vgg.json") == ("macro", {"spec": vgg_spec(16)})
    NASNET_A.save(tmp_path / "g.json")
    name, kwargs = model_from_file(tmp_path / "g.json")
    assert name == "nasnet" and Genotype.from_dict(kwargs["genotype"]) == NASNET_A
    (tmp_path / "bad.json").write_text(json.dumps({**vgg_spec(16), "stages": [{"block": "lstm"}]}))
    with pytest.raises(ModelError, match=r"stages\[0\]\.block must be one of"):
        model_from_file(tmp_path / "bad.json")
    with pytest.raises(ModelError, match="missing"):
        check_spec({**vgg_spec(16), "stages": [{"block": "cell", "depth": 1, "width": 8, "down": "max_pool"}]})
    with pytest.raises(ModelError, match="not a point of the macro space"):
        make_space("macro").encode({**vgg_spec(16), "stem": {"stride": 3, "width": 16, "convs": 1}})
    with pytest.raises(ValueError, match="unknown search space"):
        make_space("darts")


def test_macro_width_override_scales_every_stage():
    small = create_model("macro", spec=vgg_spec(32), width=16)
    assert count_params(small) == count_params(create_model("vgg", width=16))
