"""The NASNet/ENAS controller, generalised: an LSTM that writes any declared sequence of decisions.

At step t the LSTM reads the embedding of decision t-1's chosen value (a learned start vector at
t = 0), and a softmax head gives decision t's distribution; so later choices are conditioned on
earlier ones (Zoph & Le 2017; Zoph et al. 2018). Decisions with the same `group` share head and
embedding, as ENAS shares them across a cell's blocks. Logits are divided by a temperature and squashed
with `c * tanh` (ENAS), which keeps the policy from collapsing early. No I/O, no optimizer: the strategy
owns those. `values` are tuples of choice indices, one per decision (see `nasfer.nas.space`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .space import Decision


class Controller(nn.Module):
    """LSTM policy over `decisions`. Raises ValueError when a group mixes choice counts."""

    def __init__(self, decisions: Sequence[Decision], hidden: int = 100, temperature: float = 5.0,
                 tanh_constant: float = 2.5):
        super().__init__()
        if not decisions:
            raise ValueError("a controller needs at least one decision")
        self.decisions = tuple(decisions)
        self.temperature = float(temperature)
        self.tanh_constant = float(tanh_constant)
        groups: dict[str, int] = {}
        self.group_of: list[str] = []
        for i, d in enumerate(self.decisions):
            g = d.group or f"#{i}"
            if groups.setdefault(g, d.size) != d.size:
                raise ValueError(f"decision group {g!r} mixes {groups[g]} and {d.size} choices")
            self.group_of.append(g.replace(".", "_"))
        sizes = {g.replace(".", "_"): n for g, n in groups.items()}
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.ModuleDict({g: nn.Embedding(n, hidden) for g, n in sizes.items()})
        self.head = nn.ModuleDict({g: nn.Linear(hidden, n) for g, n in sizes.items()})
        for p in self.parameters():  # ENAS: small uniform init, so the first policy is near uniform
            nn.init.uniform_(p, -0.1, 0.1)

    def _logits(self, raw: torch.Tensor) -> torch.Tensor:
        logits = raw / self.temperature
        return self.tanh_constant * torch.tanh(logits) if self.tanh_constant > 0 else logits

    def _run(self, forced: Sequence[int] | None, generator: torch.Generator | None,
             greedy: bool) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor]:
        hidden = self.start.shape[1]
        h = c = torch.zeros(1, hidden, device=self.start.device)
        x = self.start
        log_prob = torch.zeros((), device=x.device)
        entropy = torch.zeros((), device=x.device)
        values = []
        for t, group in enumerate(self.group_of):
            h, c = self.lstm(x, (h, c))
            log_p = torch.log_softmax(self._logits(self.head[group](h)[0]), dim=-1)
            if forced is not None:
                action = int(forced[t])
            elif greedy:
                action = int(log_p.argmax())
            else:
                action = int(torch.multinomial(log_p.exp(), 1, generator=generator))
            log_prob = log_prob + log_p[action]
            entropy = entropy - (log_p.exp() * log_p).sum()
            values.append(action)
            x = self.embed[group](torch.tensor([action], device=h.device))
        return tuple(values), log_prob, entropy

    def sample(self, generator: torch.Generator | None = None,
               greedy: bool = False) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor]:
        """(values, sum of log-probs of its decisions, sum of the decisions' entropies in nats); differentiable."""
        return self._run(None, generator, greedy)

    def log_prob(self, values: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-prob, entropy) of the policy producing `values` (teacher-forced; differentiable).

        Raises ValueError when `values` does not fit the decisions.
        """
        if len(values) != len(self.decisions):
            raise ValueError(f"expected {len(self.decisions)} values, got {len(values)}")
        for v, d in zip(values, self.decisions):
            if not 0 <= int(v) < d.size:
                raise ValueError(f"decision {d.name!r}: index {v} out of range 0..{d.size - 1}")
        _, log_prob, entropy = self._run(values, None, False)
        return log_prob, entropy
