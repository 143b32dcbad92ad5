"""scripts/dequantize_qdq.py: an fp32 graph rebuilt from an int8 QDQ graph computes what the int8 graph does,
without its rounding, and can be quantized again (the shipped default's fp32 graph was lost)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nasfer.cli import main as nasfer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import dequantize_qdq  # noqa: E402


def test_dequantize_initializer_follows_the_onnx_spec_per_axis():
    q = np.array([[[[-64]], [[64]]], [[[10]], [[-3]]]], dtype=np.int8)  # (2, 2, 1, 1): axis 0 has 2 channels
    out = dequantize_qdq.dequantize_initializer(q, np.array([0.5, 0.25], np.float32), np.zeros(2, np.int8), 0)
    np.testing.assert_allclose(out[:, :, 0, 0], [[-32, 32], [2.5, -0.75]])
    bias = dequantize_qdq.dequantize_initializer(np.array([4, -8], np.int32), np.array(0.5, np.float32), None, None)
    np.testing.assert_allclose(bias, [2, -4])


def test_an_int8_graph_becomes_an_fp32_graph_that_agrees_with_it_and_quantizes_again(
        capsys, tmp_path, tiny_onnx, kaggle_zip):
    import onnx

    from nasfer.runtime.engine import Classifier

    int8 = tmp_path / "int8" / "tiny.onnx"
    int8.parent.mkdir()
    assert nasfer(["export", "--quantize", "int8", "--onnx", str(tiny_onnx), "--calibration-data", str(kaggle_zip),
                   "--out", str(int8), "--calibration-images", "10", "--max-accuracy-drop", "100"]) == 0
    fp32 = tmp_path / "fp32" / "tiny.onnx"
    assert dequantize_qdq.main([str(int8), str(fp32)]) == 0
    ops = {n.op_type for n in onnx.load(str(fp32)).graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"} and "Clip" in ops  # the folded ReLUs come back as clamps
    card = json.loads(fp32.with_suffix(".json").read_text())
    assert "quantization" not in card and card["metrics"] == {} and card["dequantized_from"]["file"] == "tiny.onnx"

    crops = np.random.default_rng(1).integers(0, 256, (32, 48, 48), dtype=np.uint8)
    p8, p32, original = (Classifier(p).predict(crops) for p in (int8, fp32, tiny_onnx))
    assert np.abs(p32 - p8).max() < 0.05  # the same computation less the activations' rounding
    assert np.abs(p32 - original).max() < 0.05  # and close to the graph that was quantized
    again = tmp_path / "again" / "tiny.onnx"
    again.parent.mkdir()
    capsys.readouterr()
    assert nasfer(["export", "--quantize", "int8", "--onnx", str(fp32), "--calibration-data", str(kaggle_zip),
                   "--out", str(again), "--calibration-images", "10", "--max-accuracy-drop", "100"]) == 0
    assert json.loads(again.with_suffix(".json").read_text())["dequantized_from"]["file"] == "tiny.onnx"


def test_a_graph_that_is_not_quantized_or_the_same_path_is_refused(tmp_path, tiny_onnx):
    with pytest.raises(SystemExit, match="records no quantization"):
        dequantize_qdq.main([str(tiny_onnx), str(tmp_path / "out.onnx")])
    assert not (tmp_path / "out.onnx").exists()
    with pytest.raises(SystemExit, match="would replace the int8 graph"):
        dequantize_qdq.main([str(tiny_onnx), str(tiny_onnx)])


def test_a_weight_dequantized_straight_into_a_graph_output_is_kept():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    q = numpy_helper.from_array(np.array([2, -4], np.int8), "w_q")
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "w_s")
    graph = helper.make_graph([helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w"])], "g", [],
                              [helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])], [q, scale])
    model = dequantize_qdq.dequantize_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    (kept,) = [t for t in model.graph.initializer if t.name == "w"]
    np.testing.assert_allclose(numpy_helper.to_array(kept), [1, -2])
