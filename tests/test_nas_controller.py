"""Controller and REINFORCE: valid samples, consistent log-probs, and learning on a toy reward with a known optimum."""

import math

import numpy as np
import pytest
import torch

from nasfer.nas.controller import Controller, random_genotype
from nasfer.nas.genotype import NASNET_A, OP_NAMES, Genotype
from nasfer.nas.reinforce import policy_loss, update_baseline
from nasfer.nas.strategy import RandomStrategy, ReinforceStrategy, run_strategy


def test_sample_is_valid_and_log_prob_consistent():
    torch.manual_seed(0)
    controller = Controller(blocks=5)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        genotype, log_prob, entropy = controller.sample(gen)
        assert Genotype.from_dict(genotype.to_dict()) == genotype  # passes validation
        assert len(genotype.normal) == len(genotype.reduction) == 5
        scored, scored_entropy = controller.log_prob(genotype)
        assert torch.allclose(scored, log_prob, atol=1e-5) and torch.allclose(scored_entropy, entropy, atol=1e-5)
        assert log_prob.item() < 0 and entropy.item() > 0
    # 40 decisions, each at most uniform: the entropy is bounded by the uniform policy's
    assert entropy.item() <= RandomStrategy(5).entropy + 1e-4


def test_sampling_is_reproducible_and_greedy_is_deterministic():
    torch.manual_seed(0)
    controller = Controller(blocks=3)
    a = [controller.sample(torch.Generator().manual_seed(7))[0] for _ in range(2)]
    assert a[0] == a[1]
    assert controller.sample(greedy=True)[0] == controller.sample(greedy=True)[0]


def test_temperature_and_tanh_bound_the_logits():
    controller = Controller(blocks=2, temperature=2.0, tanh_constant=1.5)
    logits = controller._logits(torch.tensor([-1000.0, 0.0, 1000.0]))
    assert torch.allclose(logits, torch.tensor([-1.5, 0.0, 1.5]))
    # so even a saturated policy keeps every action at probability >= e^-c / (e^-c + (n - 1) e^c)
    with torch.no_grad():
        for p in controller.parameters():
            p.fill_(5.0)
        log_prob, _ = controller.log_prob(random_genotype(2, generator=torch.Generator().manual_seed(0)))

    def floor(n: int) -> float:
        return math.log(math.exp(-1.5) / (math.exp(-1.5) + (n - 1) * math.exp(1.5)))

    per_cell = 2 * floor(2) + 2 * floor(3) + 4 * floor(len(OP_NAMES))  # inputs of blocks 0 and 1, four ops
    assert log_prob.item() >= 2 * per_cell - 1e-4


def test_log_prob_gradient_flows_and_rejects_foreign_genotypes():
    controller = Controller(blocks=5)
    log_prob, entropy = controller.log_prob(NASNET_A)
    (log_prob + entropy).backward()
    assert all(p.grad is not None for p in controller.parameters())
    with pytest.raises(ValueError, match="this controller writes 3"):
        Controller(blocks=3).log_prob(NASNET_A)


def test_baseline_and_policy_loss():
    assert update_baseline(None, 0.4, 0.9) == 0.4
    assert update_baseline(0.5, 1.0, 0.9) == pytest.approx(0.55)
    with pytest.raises(ValueError):
        update_baseline(0.5, 1.0, 1.0)
    log_prob, entropy = torch.tensor(-2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    loss = policy_loss(log_prob, entropy, reward=0.8, baseline=0.5, entropy_weight=0.1)
    assert loss.item() == pytest.approx(-(0.3 * -2.0) - 0.3)
    loss.backward()
    assert log_prob.grad.item() == pytest.approx(-0.3)  # descent raises the log-prob of a better-than-baseline action
    assert entropy.grad.item() == pytest.approx(-0.1)


def _toy_reward(genotype: Genotype) -> float:
    """Fraction of ops equal to sep_conv_3x3: optimum 1.0, uniform sampling gets 1/13."""
    ops = genotype.ops()
    return sum(op == "sep_conv_3x3" for op in ops) / len(ops)


def test_reinforce_learns_the_toy_optimum_and_random_does_not():
    steps = 250
    learned = run_strategy(ReinforceStrategy(blocks=3, lr=0.02, seed=0), _toy_reward, steps)
    control = run_strategy(RandomStrategy(blocks=3, seed=0), _toy_reward, steps)
    first, last = np.mean(learned[:50]), np.mean(learned[-50:])
    assert last > 0.6 and last > first + 0.3, (first, last)
    assert abs(np.mean(control[-50:]) - 1 / len(OP_NAMES)) < 0.06
    assert np.mean(control[-50:]) < np.mean(control[:50]) + 0.05  # no learning


def test_strategy_state_round_trip():
    a = ReinforceStrategy(blocks=2, seed=3)
    run_strategy(a, _toy_reward, 5)
    b = ReinforceStrategy(blocks=2, seed=99)
    b.load_state_dict(a.state_dict())
    assert b.baseline == a.baseline
    assert [b.ask() for _ in range(3)] == [a.ask() for _ in range(3)]
    r = RandomStrategy(blocks=2, seed=1)
    r2 = RandomStrategy(blocks=2, seed=2)
    r2.load_state_dict(r.state_dict())
    assert r2.ask() == r.ask() and r.best_guess() is None
