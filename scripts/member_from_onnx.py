"""Recover one member of an exported ensemble as a nasfer checkpoint, from the ensemble's fp32 ONNX graph.

    python scripts/dequantize_qdq.py int8/default.onnx /tmp/fp32/default.onnx
    python scripts/member_from_onnx.py /tmp/fp32/default.onnx --template src/nasfer/weights/default.pt \\
        --member 1 --out /tmp/member1/weights.pt

For a member whose checkpoint was lost (the shipped default's second VGG lives on only in the int8 graph). The
graph: dequantize_qdq.py's output or any `nasfer export` of an ensemble (flip TTA or none); the template: a
checkpoint of the member's architecture (another member). The members are found from the topology, not names:
the ensemble stacks its members' softmax outputs (Gemm -> Softmax -> Unsqueeze -> Concat, one Concat per pass:
export's flip TTA makes one pass over both views, older exports a pass per view), input K being member K. Its
branch is walked back from the Gemm through Clip/Relu/pooling/Flatten to each Conv, up to the input (or the
TTA's Slice/Concat; of a pass per view, the unflipped one's, as int8 graphs quantized each view's biases on its
own scale). Export folded each BatchNorm into its Conv: the folded weights go into the template's Conv2d layers
in forward order, the folded bias into the Conv2d's bias or, where it has none (vgg), the BatchNorm's bias, each
BatchNorm becomes the identity (weight 1, mean 0, var 1 - eps), and the Gemm becomes the head.

Every weight and statistic of the template is overwritten; its optimizer, EMA copy, metrics, history, epoch and
`weights` are dropped (loaders use `state_dict` only). Labels and preprocessing stay, and the config unless the
card beside the graph holds the member's own (training.config.members[K]); from the card's training.members[K]
come the member's best epoch, which weights it was (ema or raw) and its validation accuracy, so that an
ensemble's card built on it (`nasfer ensemble`) says them. `recovered_from` records the graph
(file, SHA-256), the member, the card's facts about it, the template, the check and the command.

Check, before writing: the model's probabilities on 16 random crops (one black, one white) and their mirror
images must match member K's Softmax outputs in the graph (ONNX Runtime) within --atol, with the branch's Clips
made not to clamp above, nor below except at 0 (a ReLU): an int8 graph's activation ranges, which no torch layer
computes (the difference with them is recorded too).

Errors (SystemExit, one line): a quantized graph, not an ensemble graph, member index out of range, a branch that
is not a plain chain of convolutions, a template whose architecture differs (layers, shapes, strides), a failed
check, an --out that would replace the template.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PASS = {"Clip", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Identity", "Dropout"}


def find_members(graph):
    """(producers, [[each member's Softmax node] for each pass over the input]) of an ensemble graph."""
    producers = {out: node for node in graph.node for out in node.output}

    def source(tensor):  # the node behind `tensor`, past activation clamps
        node = producers.get(tensor)
        while node is not None and node.op_type in ("Clip", "Identity"):
            node = producers.get(node.input[0])
        return node

    passes = []
    for node in graph.node:
        softmaxes = []
        for tensor in node.input if node.op_type == "Concat" and len(node.input) > 1 else ():
            unsq = source(tensor)
            soft = source(unsq.input[0]) if unsq is not None and unsq.op_type == "Unsqueeze" else None
            head = source(soft.input[0]) if soft is not None and soft.op_type == "Softmax" else None
            if head is None or head.op_type != "Gemm":
                break
            softmaxes.append(soft)
        else:
            passes += [softmaxes] if softmaxes else []
    if not passes:
        raise SystemExit("not an ensemble graph: no Concat stacks members' softmax outputs (Gemm -> Softmax -> "
                         "Unsqueeze), as `nasfer export` of an ensemble checkpoint writes")
    if len({len(p) for p in passes}) != 1:
        raise SystemExit(f"the graph's passes stack different numbers of members ({[len(p) for p in passes]})")
    return producers, passes


def branch(graph, producers, softmax, member):
    """(Gemm, [its Conv nodes from the input on], whether the branch starts at the graph input itself)."""
    inputs = {i.name for i in graph.input}
    node = producers[softmax.input[0]]
    while node.op_type != "Gemm":  # past Clips (find_members checked)
        node = producers[node.input[0]]
    gemm, convs, tensor = node, [], node.input[0]
    while tensor not in inputs:
        node = producers.get(tensor)
        if node is None or node.op_type in ("Slice", "Concat"):  # the TTA's mirror image, or both views
            return gemm, convs[::-1], False
        if node.op_type == "Conv":
            convs.append(node)
        elif node.op_type not in PASS:
            raise SystemExit(f"member {member}'s branch has a {node.op_type} node ({node.name}): only a plain chain "
                             "of convolutions (vgg-like) is supported")
        tensor = node.input[0]
    return gemm, convs[::-1], True


def template_layers(model, preprocessing):
    """[(Conv2d, the BatchNorm2d run right after it or None)] in forward order, and the one Linear."""
    import torch

    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(torch.zeros(1, preprocessing.channels, preprocessing.size, preprocessing.size))
    for hook in hooks:
        hook.remove()
    convs, linears = [], []
    for m, after in zip(order, order[1:] + [None]):
        if isinstance(m, torch.nn.Conv2d):
            ok = isinstance(after, torch.nn.BatchNorm2d) and after.num_features == m.out_channels
            convs.append((m, after if ok else None))
        elif isinstance(m, torch.nn.Linear):
            linears.append(m)
    if len(linears) != 1:
        raise SystemExit(f"template architecture mismatch: {len(linears)} Linear layers; the member has one head")
    return convs, linears[0]


def load_member(model, convs, linear, gemm, graph_convs, inits):
    """Write the graph's folded weights into `model` (in place); SystemExit where shapes or settings differ, or
    where a weight or statistic of the template would be left."""
    import torch

    if len(convs) != len(graph_convs):
        raise SystemExit(f"template architecture mismatch: {len(convs)} convolutions, the member has {len(graph_convs)}")
    names, written = {m: n for n, m in model.named_modules()}, set()
    with torch.no_grad():
        for i, ((conv, bn), node) in enumerate(zip(convs, graph_convs)):
            if node.input[1] not in inits:
                raise SystemExit(f"{node.name}: its weight is computed, not stored: not an fp32 export")
            w = inits[node.input[1]]
            b = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0], np.float32)
            attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
            mine = {"shape": list(conv.weight.shape), "strides": list(conv.stride), "pads": list(conv.padding) * 2,
                    "dilations": list(conv.dilation), "group": conv.groups}
            theirs = {"shape": list(w.shape), "strides": attrs.get("strides", [1, 1]), "pads": attrs.get("pads", [0] * 4),
                      "dilations": attrs.get("dilations", [1, 1]), "group": attrs.get("group", 1)}
            if mine != theirs:
                raise SystemExit(f"template architecture mismatch at convolution {i} ({names[conv]}): template "
                                 f"{mine}, graph {theirs}")
            conv.weight.copy_(torch.tensor(w))
            written.add(f"{names[conv]}.weight")
            for key, value in (("weight", 1), ("bias", 0), ("running_mean", 0), ("running_var", 1 - bn.eps),
                               ("num_batches_tracked", 0)) if bn is not None else ():  # (x - 0) / 1 * 1 + bias
                getattr(bn, key).fill_(value)
                written.add(f"{names[bn]}.{key}")
            if conv.bias is not None or bn is not None:
                (conv.bias if conv.bias is not None else bn.bias).copy_(torch.tensor(b))
                written.add(f"{names[conv]}.bias" if conv.bias is not None else f"{names[bn]}.bias")
            elif np.any(b):
                raise SystemExit(f"{names[conv]} has no bias and no BatchNorm after it to take the graph's bias")
        attrs = {a.name: a.f if a.type == 1 else a.i for a in gemm.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise SystemExit(f"{gemm.name}: a Gemm with transA, alpha or beta is not a Linear head")
        w = inits[gemm.input[1]] if attrs.get("transB", 0) else inits[gemm.input[1]].T
        if list(w.shape) != list(linear.weight.shape):
            raise SystemExit(f"template architecture mismatch: head {list(linear.weight.shape)}, graph {list(w.shape)}")
        linear.weight.copy_(torch.tensor(w))
        linear.bias.copy_(torch.tensor(inits[gemm.input[2]]))
        written |= {f"{names[linear]}.weight", f"{names[linear]}.bias"}
    left = sorted(set(model.state_dict()) - written)
    if left:
        raise SystemExit(f"template architecture mismatch: weights the graph does not give ({', '.join(left[:4])})")


def unclamped(onnx_model, softmaxes):
    """A copy of the graph whose Clips before `softmaxes` clamp neither above nor below, except at 0 (a ReLU)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    producers = {out: node for node in model.graph.node for out in node.output}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    todo, seen = [s.input[0] for s in softmaxes], set()
    while todo:
        node = producers.get(todo.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        todo += list(node.input)
        if node.op_type == "Clip" and len(node.input) == 3 and {node.input[1], node.input[2]} <= set(inits):
            low = 0.0 if float(inits[node.input[1]]) == 0.0 else -np.inf
            names = [f"{node.output[0]}_unclamped_{end}" for end in ("min", "max")]
            model.graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), n)
                                           for n, v in zip(names, (low, np.inf)))
            node.input[1], node.input[2] = names
    return model


def check_inputs(preprocessing, n=16, seed=0):
    from nasfer.preprocessing import normalize

    crops = np.random.default_rng(seed).integers(0, 256, (n, preprocessing.size, preprocessing.size), dtype=np.uint8)
    crops[0], crops[1] = 0, 255
    return normalize(crops, preprocessing)


def check(model, onnx_model, softmaxes, x, threads=1):
    """Largest |recovered model - graph| in probability on inputs `x` (N, C, S, S) and their mirror images."""
    import onnx
    import onnxruntime as ort
    import torch

    probe = onnx.ModelProto()
    probe.CopyFrom(onnx_model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(s.output[0], onnx.TensorProto.FLOAT, None)
                              for s in softmaxes)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.log_severity_level = 3  # not the unused range initializers that `unclamped` leaves
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    outs = session.run([s.output[0] for s in softmaxes], {probe.graph.input[0].name: x})
    with torch.no_grad():
        views = [torch.softmax(model(torch.from_numpy(np.ascontiguousarray(v))), 1).numpy() for v in (x, x[..., ::-1])]
    n, want = len(x), np.concatenate(views)
    if len(outs) == 1 and len(outs[0]) in (n, 2 * n):  # without TTA, or one pass over both views
        return float(np.abs(outs[0] - want[:len(outs[0])]).max())
    if len(outs) == 2:  # a pass per view, in whichever order the graph runs them
        return min(float(np.abs(np.concatenate(o) - want).max()) for o in (outs, outs[::-1]))
    raise SystemExit(f"the graph makes {len(outs)} passes of {[len(o) for o in outs]} rows: neither flip TTA nor none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", type=Path, help="an fp32 ensemble .onnx (dequantize_qdq.py's output, or an export)")
    parser.add_argument("--template", type=Path, required=True, help="a checkpoint of the member's architecture")
    parser.add_argument("--member", type=int, required=True, help="the member's index in the ensemble (0-based)")
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint (.pt) to write")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest probability difference the check allows")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = parser.parse_args(argv)
    import onnx
    import torch
    from onnx import numpy_helper

    from nasfer.checkpoint import TRAINING_STATE_KEYS, build_model, load_checkpoint, preprocessing_of, save_checkpoint
    from nasfer.errors import ModelError
    from nasfer.runtime.engine import card_path, sha256_file

    torch.set_num_threads(args.threads)
    if args.out.resolve() == args.template.resolve():
        raise SystemExit(f"{args.out}: the output would replace the template; give another path")
    try:
        template = load_checkpoint(args.template)
    except ModelError as exc:
        raise SystemExit(str(exc)) from None
    if template["model"]["name"] == "ensemble":
        raise SystemExit(f"{args.template}: an ensemble; the template must be one member's checkpoint")
    if not args.onnx.is_file():
        raise SystemExit(f"{args.onnx}: not found")
    onnx_model = onnx.load(str(args.onnx))
    graph = onnx_model.graph
    if {n.op_type for n in graph.node} & {"QuantizeLinear", "DequantizeLinear"}:
        raise SystemExit(f"{args.onnx}: a quantized graph; make it fp32 first (scripts/dequantize_qdq.py)")
    producers, passes = find_members(graph)
    count = len(passes[0])
    if not 0 <= args.member < count:
        raise SystemExit(f"--member {args.member}: out of range; the ensemble has {count} members (0..{count - 1})")
    softmaxes = [p[args.member] for p in passes]
    branches = [branch(graph, producers, s, args.member) for s in softmaxes]
    gemm, graph_convs, _ = next((b for b in branches if b[2]), branches[0])
    preprocessing = preprocessing_of(template)
    model = build_model(template)
    convs, linear = template_layers(model, preprocessing)
    load_member(model, convs, linear, gemm, graph_convs, {t.name: numpy_helper.to_array(t) for t in graph.initializer})
    x = check_inputs(preprocessing)
    diff = check(model, unclamped(onnx_model, softmaxes), softmaxes, x, args.threads)
    if not diff <= args.atol:
        raise SystemExit(f"check failed: the recovered member {args.member} differs from the graph's by {diff:.2e} "
                         f"in probability (allowed {args.atol:.0e}); nothing written")

    card = json.loads(card_path(args.onnx).read_text(encoding="utf-8")) if card_path(args.onnx).is_file() else {}
    training = card.get("training") or {}
    lists = {"config": (training.get("config") or {}).get("members"), "training": training.get("members"),
             "selection": (training.get("selection") or (training.get("config") or {}).get("selection")
                           or {}).get("candidates")}
    own = {k: v[args.member] for k, v in lists.items() if isinstance(v, list) and len(v) == count}
    ckpt = {k: v for k, v in template.items() if k not in (*TRAINING_STATE_KEYS, "metrics", "history", "epoch", "weights")}
    ckpt["state_dict"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    own_config = isinstance(own.get("config"), dict)
    ckpt["config"] = own.pop("config") if own_config else ckpt.get("config", {})
    trained = own.get("training") or {}  # the member's run as the card recorded it (card.training.members[K])
    if trained.get("best_epoch"):
        ckpt["epoch"] = int(trained["best_epoch"]) - 1  # 0-based, as a training checkpoint keeps it
    if trained.get("weights"):
        ckpt["weights"] = trained["weights"]  # ema or raw: which of the run's weights the graph held
    if trained.get("val_accuracy") is not None:
        ckpt["metrics"] = {"val_accuracy": trained["val_accuracy"]}
    ckpt["recovered_from"] = {
        "file": args.onnx.name, "sha256": sha256_file(args.onnx), "member": args.member, "members": count,
        "dequantized_from": card.get("dequantized_from"), "card": own or None,
        "config": "the card's training.config.members" if own_config else "the template's",
        "template": {"file": args.template.name, "sha256": sha256_file(args.template)},
        "check": {"max_abs_diff": diff, "atol": args.atol, "inputs": f"{len(x)} random crops and their mirror images",
                  "max_abs_diff_with_the_graphs_clamps": check(model, onnx_model, softmaxes, x, args.threads)},
        "command": "python scripts/member_from_onnx.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    save_checkpoint(args.out, ckpt)
    print(f"{args.out}: member {args.member} of {count} from {args.onnx} ({len(graph_convs)} convolutions and a head; "
          f"{len(passes)} pass(es) checked, max |diff| {diff:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
