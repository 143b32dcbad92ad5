"""Controller and strategies on declared spaces: valid samples, consistent log-probs, batched REINFORCE
and regularized evolution solving a toy reward with a known optimum while random search does not."""

import numpy as np
import pytest
import torch

from nasfer.nas.controller import Controller
from nasfer.nas.reinforce import standardized_advantages
from nasfer.nas.space import Decision, make_space
from nasfer.nas.strategy import STRATEGIES, make_strategy, run_strategy, uniform_entropy


def _toy(space):
    """Fraction of the cell ops that are sep_conv_3x3: optimum 1.0, uniform sampling ~1/13."""
    op_idx = [i for i, d in enumerate(space.decisions) if d.name.endswith(("op_a", "op_b"))]
    target = space.decisions[op_idx[0]].choices.index("sep_conv_3x3")
    return lambda values: sum(values[i] == target for i in op_idx) / len(op_idx)


def test_sample_is_valid_and_log_prob_consistent():
    space = make_space("macro", blocks=2)
    torch.manual_seed(0)
    controller = Controller(space.decisions)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        values, log_prob, entropy = controller.sample(gen)
        space.decode(values)  # a valid architecture
        scored, scored_entropy = controller.log_prob(values)
        assert torch.allclose(scored, log_prob, atol=1e-5) and torch.allclose(scored_entropy, entropy, atol=1e-5)
        assert log_prob.item() < 0 and 0 < entropy.item() <= uniform_entropy(space) + 1e-4
    with pytest.raises(ValueError, match="out of range"):
        controller.log_prob((99,) * len(space.decisions))
    with pytest.raises(ValueError, match="mixes"):
        Controller([Decision("a", (1, 2), "g"), Decision("b", (1, 2, 3), "g")])


def test_sampling_is_reproducible_and_greedy_is_the_argmax_policy():
    """Restored (64063cc dropped the first version with the old Controller API): one seed, one sequence;
    greedy sampling ignores the generator and picks the most probable choice."""
    space = make_space("macro", blocks=2)
    torch.manual_seed(0)
    controller = Controller(space.decisions)
    first = [controller.sample(torch.Generator().manual_seed(3))[0] for _ in range(2)]
    assert first[0] == first[1]
    assert len({controller.sample(torch.Generator().manual_seed(seed), greedy=True)[0] for seed in range(4)}) == 1
    one = Controller([Decision("a", tuple(range(6)))])
    with torch.no_grad():
        one.head["#0"].bias.copy_(torch.tensor([0.0, 0.3, -0.2, 0.9, 0.1, 0.5]) * 10)
    (greedy,), _, _ = one.sample(torch.Generator().manual_seed(0), greedy=True)
    scores = [float(one.log_prob((c,))[0].detach()) for c in range(6)]
    assert greedy == max(range(6), key=scores.__getitem__) == 3


def test_log_prob_gradient_reaches_every_parameter_and_wrong_lengths_are_refused():
    """Restored (64063cc): a REINFORCE step must move the whole controller; a value list of the wrong length
    is a ValueError naming the expected count, not a silent truncation."""
    space = make_space("macro", blocks=2)
    torch.manual_seed(0)
    controller = Controller(space.decisions)
    values, _, _ = controller.sample(torch.Generator().manual_seed(0))
    log_prob, entropy = controller.log_prob(values)
    (log_prob + entropy).backward()
    used = {f"embed.{g}" for g in controller.group_of[:-1]} | {f"head.{g}" for g in controller.group_of}
    for name, p in controller.named_parameters():
        if name.startswith(("lstm.", "start")) or name.rsplit(".", 1)[0] in used:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match=f"expected {len(space.decisions)} values, got 1"):
        controller.log_prob(values[:1])


def test_policy_loss_ascends_the_advantage_and_the_entropy_bonus_keeps_the_policy_broad():
    """Restored (64063cc): the signs. Minimising policy_loss raises the log-probability of a positive-advantage
    choice and lowers a negative one's; minimising entropy_bonus raises the entropy."""
    from nasfer.nas.reinforce import entropy_bonus, policy_loss

    log_probs = torch.tensor([-1.0, -2.0], requires_grad=True)
    entropies = torch.tensor([0.5, 0.7], requires_grad=True)
    policy_loss(log_probs, entropies, torch.tensor([1.0, -1.0])).backward()
    assert log_probs.grad[0] < 0 < log_probs.grad[1]  # gradient descent: up for A > 0, down for A < 0
    assert policy_loss(log_probs, entropies, torch.zeros(2)).item() == 0.0
    bonus = entropy_bonus(entropies, 0.1)
    bonus.backward()
    assert bonus.item() == pytest.approx(-0.1 * 0.6) and bool((entropies.grad < 0).all())
    assert entropy_bonus(entropies, 0.0).item() == 0.0


def test_temperature_and_tanh_bound_the_logits():
    controller = Controller([Decision("a", (0, 1, 2))], temperature=2.0, tanh_constant=1.5)
    logits = controller._logits(torch.tensor([-1000.0, 0.0, 1000.0]))
    assert torch.allclose(logits, torch.tensor([-1.5, 0.0, 1.5]))


def test_advantages_are_standardised_within_the_batch():
    a = standardized_advantages([0.30, 0.34, 0.38, 0.34])
    assert float(a.mean()) == pytest.approx(0.0, abs=1e-6) and float(a.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    # the scale of the rewards does not change the step: seed noise of 0.04 or a 10x reward give the same A
    assert torch.allclose(a, standardized_advantages([3.0, 3.4, 3.8, 3.4]), atol=1e-4)
    assert torch.equal(standardized_advantages([0.5, 0.5]), torch.zeros(2))


def test_batched_reinforce_solves_the_toy_reward_and_random_does_not():
    space = make_space("nasnet", blocks=3)
    toy = _toy(space)
    learned = np.array(run_strategy(make_strategy("reinforce", space, seed=0, batch_size=8), toy, 240))
    control = np.array(run_strategy(make_strategy("random", space, seed=0), toy, 240))
    assert learned[-48:].mean() > learned[:48].mean() + 0.4 and learned[-48:].mean() > 0.7
    assert control[-48:].mean() < 0.2


def test_reinforce_updates_once_per_batch_and_keeps_the_entropy_bonus_comparable():
    space = make_space("nasnet", blocks=3)
    toy = _toy(space)
    strategy = make_strategy("reinforce", space, seed=0, batch_size=8)
    before = [p.detach().clone() for p in strategy.controller.parameters()]
    asked = [strategy.ask() for _ in range(8)]
    assert strategy.ask() is None  # the whole batch is out: wait for its rewards
    stats = [strategy.tell(v, toy(v)) for v in asked[:7]]
    assert all(s["updated"] == 0.0 for s in stats)
    assert all(torch.equal(a, b) for a, b in zip(before, strategy.controller.parameters()))
    last = strategy.tell(asked[7], toy(asked[7]))
    assert last["updated"] == 1.0
    extra = strategy.ask()
    assert extra is not None  # a new batch may start
    strategy.tell(extra, toy(extra))
    ratios = []
    for _ in range(25):
        batch = list(iter(strategy.ask, None))  # ask until the batch is out
        assert 1 <= len(batch) <= 8
        ratios += [s["entropy_grad_norm"] / s["policy_grad_norm"] for v in batch
                   if (s := strategy.tell(v, toy(v)))["updated"] and s["policy_grad_norm"] > 0]
    assert 0.02 < np.median(ratios[-10:]) < 50  # bonus within ~1-2 orders of magnitude of the policy term


def test_regularized_evolution_learns_on_the_same_declaration_and_ages_its_population():
    space = make_space("nasnet", blocks=3)
    toy = _toy(space)
    strategy = make_strategy("evolution", space, seed=0, population=16, sample_size=4)
    rewards = np.array(run_strategy(strategy, toy, 240))
    assert rewards[-48:].mean() > rewards[:16].mean() + 0.25
    assert len(strategy.population) == 16
    assert list(strategy.population)[-1][1] == rewards[-1]  # the newest joined, the oldest left
    with pytest.raises(ValueError):
        make_strategy("evolution", space, population=3, sample_size=5)


def test_random_search_and_evolution_with_one_seed_start_from_different_children():
    """Before: both drew their first `population` children from random.Random(seed), so random:0 and
    evolution:0 shared 20 of their first 25 children (and their rewards) in a strategy comparison."""
    space = make_space("macro")
    rnd, evo = make_strategy("random", space, seed=0), make_strategy("evolution", space, seed=0)
    pairs = [(rnd.ask(), evo.ask()) for _ in range(20)]
    assert sum(a == b for a, b in pairs) == 0
    again = make_strategy("random", space, seed=0)  # each stream stays deterministic
    assert [again.ask() for _ in range(20)] == [a for a, _ in pairs]


def test_reinforce_defaults_are_the_search_defaults():
    """The toy-reward tests exercise ReinforceStrategy's defaults: they must be what `nasfer search` runs."""
    import inspect

    from nasfer.nas.config import SearchConfig
    from nasfer.nas.strategy import ReinforceStrategy

    defaults = {k: v.default for k, v in inspect.signature(ReinforceStrategy).parameters.items()}
    cfg = SearchConfig()
    assert (defaults["batch_size"], defaults["lr"], defaults["entropy_weight"], defaults["temperature"],
            defaults["tanh_constant"]) == (cfg.reinforce_batch, cfg.controller_lr, cfg.entropy_weight,
                                           cfg.temperature, cfg.tanh_constant)


def test_evolution_tournament_draws_with_replacement():
    """Real et al. 2019, Algorithm 1: each tournament member is drawn independently from the population."""
    space = make_space("nasnet", blocks=2)
    strategy = make_strategy("evolution", space, seed=0, population=2, sample_size=2)
    for i in range(2):
        strategy.tell(strategy.ask(), float(i))
    draws = []
    strategy.space = type("Spy", (), {"mutate": lambda self, parent, rng: draws.append(parent) or parent,
                                      "check": space.check})()
    for _ in range(200):
        strategy.ask()
    worse = list(strategy.population)[0][0]
    assert worse in draws  # the worse member wins only when drawn twice: impossible without replacement


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_resume_exactly_from_their_state(name):
    space = make_space("macro", blocks=2)
    toy = lambda v: (sum(v) % 7) / 7  # noqa: E731
    kwargs = {"batch_size": 4} if name == "reinforce" else {}
    a = make_strategy(name, space, seed=3, **kwargs)
    run_strategy(a, toy, 10)
    state = a.state_dict()
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    b = make_strategy(name, space, seed=99, **kwargs)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert run_strategy(a, toy, 6) == run_strategy(b, toy, 6)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_failed_proposal_told_as_nan_is_dropped(name):
    space = make_space("nasnet", blocks=2)
    kwargs = {"batch_size": 2} if name == "reinforce" else {}
    strategy = make_strategy(name, space, seed=0, **kwargs)
    a, b = strategy.ask(), strategy.ask()
    assert strategy.tell(a, float("nan"))["dropped"] == 1.0
    c = strategy.ask()  # REINFORCE does not wait for the failed one
    assert c is not None
    strategy.tell(b, 0.5)
    stats = strategy.tell(c, 0.7)
    if name == "reinforce":
        assert stats["updated"] == 1.0  # the batch is b and c
    else:
        assert strategy.best_guess() == c
