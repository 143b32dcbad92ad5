"""Rebuild an fp32 ONNX graph from a static int8 QDQ graph, so it can be quantized again.

    python scripts/dequantize_qdq.py src/nasfer/weights/default.onnx /tmp/fp32/default.onnx

For a model whose fp32 graph was lost (the shipped default's, with the machine that made it), this is
the only fp32 source left. In a QDQ graph (ONNX Runtime's `quantize_static`, QuantFormat.QDQ) every
quantized tensor passes through DequantizeLinear: weights and biases are integer initializers feeding
one, activations pass QuantizeLinear -> DequantizeLinear. This script

- replaces each DequantizeLinear of an initializer by the float initializer it computes,
  (q - zero_point) * scale per the ONNX spec (per-axis where `axis` is given), so the weights are exactly
  the values the int8 model computes with;
- replaces each activation QuantizeLinear -> DequantizeLinear pair by a Clip to the range the pair can
  represent, ((qmin - zero_point) * scale, (qmax - zero_point) * scale): the quantizer folds a ReLU into a
  uint8 pair with zero point 0, so the clamp is part of what the int8 model computes,

and writes the graph with a card beside it: the int8 card without its `quantization` and test metrics,
with the new SHA-256 and a `dequantized_from` note (file, SHA-256, the int8 card's quantization command).
The fp32 graph is the int8 one without its rounding and is what `nasfer export --onnx
FP32 --quantize int8` takes. Raises SystemExit with a one-line message for a graph that is not QDQ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def dequantize_initializer(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                           axis: int | None) -> np.ndarray:
    """(q - zero_point) * scale as float32 (ONNX DequantizeLinear); per-axis when scale is 1-D with more
    than one element (`axis`, default 1, as the spec)."""
    zp = np.zeros_like(scale, dtype=np.int64) if zero_point is None else zero_point.astype(np.int64)
    values = q.astype(np.int64)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis if axis is not None else 1] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((values - zp) * scale.astype(np.float64)).astype(np.float32)


def dequantize_graph(model):
    """The fp32 version of the QDQ `model` (an onnx.ModelProto, changed in place and returned)."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    value = {name: numpy_helper.to_array(t) for name, t in inits.items()}
    producers = {out: node for node in graph.node for out in node.output}
    drop, new_inits, clips = [], [], []
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        source = node.input[0]
        if source in inits:  # a weight or a bias
            zp = value[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            floats = dequantize_initializer(value[source], value[node.input[1]], zp, axis)
            new_inits.append(numpy_helper.from_array(floats, node.output[0]))
            drop.append(node)
        elif source in producers and producers[source].op_type == "QuantizeLinear":  # an activation's Q -> DQ
            quant = producers[source]
            if value[quant.input[1]].size != 1:
                raise SystemExit(f"{quant.name or quant.output[0]}: a per-axis activation scale; only per-tensor "
                                 "activations (ONNX Runtime's QDQ models) are supported")
            scale = float(value[quant.input[1]])
            zp_name = quant.input[2] if len(quant.input) > 2 else ""
            zp = value[zp_name] if zp_name else np.array(0, dtype=np.uint8)
            info = np.iinfo(zp.dtype)
            low, high = (info.min - int(zp)) * scale, (info.max - int(zp)) * scale
            # the pair clamps to its integer range: the quantizer folded a ReLU into it (uint8, zero point 0)
            names = [f"{node.output[0]}_min", f"{node.output[0]}_max"]
            new_inits += [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in zip(names, (low, high))]
            clips.append(onnx.helper.make_node("Clip", [quant.input[0], *names], [node.output[0]],
                                               name=f"{node.output[0]}_range"))
            drop += [node, quant]
    if not drop:
        raise SystemExit("not a QDQ graph: it has no DequantizeLinear to remove")
    dropped = {id(n) for n in drop}
    order = []  # each Clip where its pair's DequantizeLinear stood: the graph stays topologically sorted
    for node in graph.node:
        clip = next((c for c in clips if c.output[0] == node.output[0]), None) if node.op_type == "DequantizeLinear" else None
        if clip is not None:
            order.append(clip)
        elif id(node) not in dropped:
            order.append(node)
    del graph.node[:]
    graph.node.extend(order)
    left = sorted({n.op_type for n in graph.node} & {"QuantizeLinear", "DequantizeLinear"})
    if left:
        raise SystemExit(f"{', '.join(left)} left that is neither a weight's nor an activation's pair: not a QDQ "
                         "graph this script knows")
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    initializers = [t for t in list(graph.initializer) + new_inits if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("int8", type=Path, help="a QDQ int8 .onnx with its card beside it")
    parser.add_argument("out", type=Path, help="the fp32 .onnx to write (its card goes beside it)")
    args = parser.parse_args(argv)
    import onnx

    from nasfer.runtime.engine import card_path, read_card, sha256_file

    if not args.int8.is_file():
        raise SystemExit(f"{args.int8}: not found")
    if args.out.resolve() == args.int8.resolve():
        raise SystemExit(f"{args.out}: the output would replace the int8 graph it is made from; give another path")
    card = read_card(args.int8)
    if not card.get("quantization"):
        raise SystemExit(f"{args.int8}: its card records no quantization; it is fp32 already")
    model = dequantize_graph(onnx.load(str(args.int8)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    quantization = card.pop("quantization")
    card["metrics"] = {}  # not a released model: never scored on a test split
    card["onnx"] = {**card["onnx"], "file": args.out.name, "sha256": sha256_file(args.out)}
    card["dequantized_from"] = {"file": args.int8.name, "sha256": sha256_file(args.int8),
                                "quantization_command": quantization.get("command"),
                                "command": "python scripts/dequantize_qdq.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    card_path(args.out).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"{args.out}: fp32 graph from {args.int8} ({len(model.graph.node)} nodes); card {card_path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
