"""Shared weights: any sampled child runs, only its ops learn, and it computes exactly what its standalone cell does."""

import torch

from nasfer.nas.cells import Cell
import random

from nasfer.nas.genotype import Genotype
from nasfer.nas.nasnet_space import NasnetSpace
from nasfer.nas.supernet import SharedCell, SuperNet

G = Genotype(normal=[(0, "sep_conv_3x3", 1, "identity"), (2, "max_pool_3x3", 1, "conv_1x3_3x1"),
                     (0, "dil_conv_3x3", 3, "avg_pool_3x3")],
             reduction=[(1, "conv_3x3", 0, "max_pool_5x5"), (2, "identity", 1, "sep_conv_5x5"),
                        (3, "conv_1x1", 2, "sep_conv_7x7")])


def test_supernet_runs_sampled_children():
    torch.manual_seed(0)
    net = SuperNet(F=4, N=1, blocks=3, num_classes=3)
    space, rng = NasnetSpace(blocks=3), random.Random(0)
    x = torch.randn(4, 1, 16, 16)
    for _ in range(4):
        child = Genotype.from_dict(space.decode(space.sample(rng)))
        out = net(x, child)
        assert out.shape == (4, 3) and torch.isfinite(out).all()
        out.sum().backward()


def test_only_the_sampled_ops_get_gradients():
    torch.manual_seed(0)
    net = SuperNet(F=4, N=1, blocks=3, num_classes=3)
    net(torch.randn(4, 1, 16, 16), G).sum().backward()
    edges = net.cells[0].edges  # a normal cell
    assert all(p.grad is not None for p in edges[0]["s1"]["sep_conv_3x3"].parameters())
    assert all(p.grad is None for p in edges[0]["s1"]["conv_3x3"].parameters())
    assert all(p.grad is None for p in edges[1]["s1"]["sep_conv_3x3"].parameters())


def test_shared_cell_computes_the_standalone_cell():
    """Same weights -> same numbers: the zero channels of used blocks are the only difference."""
    torch.manual_seed(0)
    C = 4
    for kind, reduction in (("normal", False), ("reduction", True)):
        blocks = G.cell(kind)
        shared = SharedCell(3, 6, 6, C, reduction=reduction, reduction_prev=False)
        cell = Cell(blocks, 6, 6, C, reduction=reduction, reduction_prev=False).train()
        cell.preprocess0.load_state_dict(shared.preprocess0.state_dict(), strict=False)
        cell.preprocess1.load_state_dict(shared.preprocess1.state_dict(), strict=False)
        for i, (in_a, op_a, in_b, op_b) in enumerate(blocks):
            for slot, (index, op) in enumerate(((in_a, op_a), (in_b, op_b))):
                stride = 2 if reduction and index < 2 else 1
                cell.ops[2 * i + slot].load_state_dict(
                    shared.edges[2 * i + slot][f"s{stride}"][op].state_dict(), strict=False)
        s0, s1 = torch.randn(3, 6, 8, 8), torch.randn(3, 6, 8, 8)
        wide = shared(s0, s1, blocks)
        assert wide.shape[1] == 3 * C
        kept = torch.cat([wide[:, (k - 2) * C:(k - 1) * C] for k in cell.concat], dim=1)
        assert torch.allclose(kept, cell(s0, s1), atol=1e-5)
        dropped = [k for k in range(2, 5) if k not in cell.concat]
        assert all(wide[:, (k - 2) * C:(k - 1) * C].abs().sum() == 0 for k in dropped)


def test_shared_weight_evaluator_uses_the_fp32_memory_format_of_nasfer_train():
    """Fault 6: the evaluator trains in the memory format `train.memory_format_for` picks (fp32: channels_last)."""
    from nasfer.nas.evaluators import SharedWeights

    torch.manual_seed(0)
    net = SuperNet(F=8, N=1, blocks=3, num_classes=3)
    x, y = torch.randint(0, 256, (12, 1, 16, 16)).float(), torch.randint(0, 3, (12,))
    evaluator = SharedWeights(net, x, y, x, y, batch_size=4, eval_batch=6, lr=0.01, seed=0)
    assert evaluator.memory_format == torch.channels_last
    assert evaluator._input(x[:2]).is_contiguous(memory_format=torch.channels_last)
    loss, _ = evaluator.train_step(G)
    assert loss > 0 and 0.0 <= evaluator.full(G) <= 1.0
