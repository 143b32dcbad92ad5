"""Genotype values: JSON round trip, NASNet-A, the concat rule, and errors that name the file and the problem."""

import dataclasses
import json

import pytest

from nasfer.errors import ModelError
from nasfer.nas.genotype import FORMAT, NASNET_A, OP_NAMES, Genotype, concat_states

SMALL = Genotype(normal=[(0, "conv_3x3", 1, "identity"), (2, "max_pool_3x3", 0, "sep_conv_5x5")],
                 reduction=[(1, "avg_pool_3x3", 1, "dil_conv_3x3"), (0, "conv_1x7_7x1", 2, "conv_1x1")])


def test_round_trip_dict_and_file(tmp_path):
    for genotype in (NASNET_A, SMALL):
        assert Genotype.from_dict(genotype.to_dict()) == genotype
        assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype
        path = genotype.save(tmp_path / "g.json", search={"score": 0.5})
        assert Genotype.load(path) == genotype
        assert json.loads(path.read_text())["search"] == {"score": 0.5}  # metadata kept, ignored on load


def test_value_semantics():
    assert isinstance(SMALL.normal, tuple) and isinstance(SMALL.normal[0], tuple)  # lists normalised
    assert hash(SMALL) == hash(Genotype.from_dict(SMALL.to_dict()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        SMALL.normal = ()  # frozen
    assert len(SMALL.ops()) == 8
    assert "conv_3x3" in str(SMALL)


def test_nasnet_a_uses_its_op_set():
    assert len(NASNET_A.normal) == len(NASNET_A.reduction) == 5
    assert set(NASNET_A.ops()) == {"sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3",
                                   "max_pool_3x3", "identity"}
    assert NASNET_A.concat("normal") == [2, 3, 4, 5, 6]
    assert NASNET_A.concat("reduction") == [4, 5, 6]  # blocks 0 and 1 feed block 3 / block 4


def test_concat_is_the_unused_blocks():
    assert concat_states(SMALL.normal) == [3]
    assert concat_states(SMALL.reduction) == [3]


@pytest.mark.parametrize("cell, message", [
    ([(0, "conv_9x9", 1, "identity")], "normal block 0: unknown op_a 'conv_9x9'; choose one of identity"),
    ([(0, "identity", 2, "identity")], r"normal block 0: input_b = 2 is out of range; block 0 may use 0..1"),
    ([(0, "identity", 1, "identity"), (4, "identity", 0, "identity")], "normal block 1: input_a = 4"),
    ([(-1, "identity", 1, "identity")], "input_a = -1 is out of range"),
    ([(True, "identity", 1, "identity")], "input_a must be an integer"),
    ([(0, "identity", 1)], r"expected \[input_a, op_a, input_b, op_b\]"),
    ([], "'normal' must be a non-empty list"),
])
def test_validation_errors_name_file_and_problem(tmp_path, cell, message):
    data = {"format": FORMAT, "normal": [list(b) for b in cell], "reduction": SMALL.to_dict()["reduction"]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=message) as info:
        Genotype.load(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(ModelError, match=message):
        Genotype(normal=cell, reduction=SMALL.reduction)


def test_file_level_errors(tmp_path):
    with pytest.raises(ModelError, match="genotype file not found"):
        Genotype.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"x.json: not a JSON genotype"):
        Genotype.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"normal": SMALL.to_dict()["normal"]}))
    with pytest.raises(ModelError, match=r"y.json: missing 'reduction' cell"):
        Genotype.load(tmp_path / "y.json")
    (tmp_path / "z.json").write_text(json.dumps({**SMALL.to_dict(), "format": "other/9"}))
    with pytest.raises(ModelError, match="unsupported genotype format 'other/9'"):
        Genotype.load(tmp_path / "z.json")
    (tmp_path / "w.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="a genotype is a JSON object"):
        Genotype.load(tmp_path / "w.json")


def test_op_names_are_torch_free_constants():
    assert "sep_conv_3x3" in OP_NAMES and len(set(OP_NAMES)) == len(OP_NAMES)
