"""Search spaces as declarations: an ordered list of categorical decisions plus a decoder.

A search space says *what* can be chosen (`decisions`, each a `Decision` with its choices) and how a
choice vector becomes an architecture (`decode`); strategies only ever see the decisions, so the LSTM
controller, random search and regularized evolution run unchanged on every space (as in NNI's and
Optuna's define-by-declaration spaces). An architecture is a JSON object ("spec") that
`nasfer train --genotype FILE` can build; `values` is the tuple of choice indices, one per decision.

- `SearchSpace.sample(rng)`: uniform values; `mutate(values, rng)`: one decision changed so that the
  decoded architecture changes (Real et al. 2019's mutation);
- `key(values)`: a short hash of the canonical spec (decisions a spec ignores, e.g. the kernel of a
  plain-conv stage, do not change it), used for de-duplication and the latency cache;
- `model(spec)`: (registered model name, kwargs) of the network that ships.

Spaces are registered by name in `SPACES` (`nasnet`, `macro`); `make_space(name, **options)` builds one.
Torch-free, so the CLI and specs can be handled without torch.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ModelError


@dataclass(frozen=True)
class Decision:
    """One categorical choice. `group`: decisions with the same group and choice count share the
    controller's embedding and softmax head (ENAS shares them across the blocks of a cell)."""

    name: str
    choices: tuple[Any, ...]
    group: str = ""

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise ValueError(f"decision {self.name!r} has no choices")
        object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def size(self) -> int:
        return len(self.choices)


class SearchSpace:
    """Base class: subclasses set `name`, `decisions` and implement `decode`, `encode`, `model`."""

    name: str = ""
    decisions: tuple[Decision, ...] = ()

    # -- to implement
    def decode(self, values: Sequence[int]) -> dict[str, Any]:
        """Choice indices (one per decision) -> the architecture's canonical JSON spec."""
        raise NotImplementedError

    def encode(self, spec: dict[str, Any]) -> tuple[int, ...]:
        """A spec -> choice indices (decisions the spec ignores get index 0); ModelError if outside the space."""
        raise NotImplementedError

    def model(self, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(registered model name, kwargs without num_classes/in_channels) of the network `spec` describes."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The constructor arguments, so a saved search can rebuild the same space."""
        return {}

    # -- generic
    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.decisions)

    def check(self, values: Sequence[int]) -> tuple[int, ...]:
        values = tuple(int(v) for v in values)
        if len(values) != len(self.decisions):
            raise ValueError(f"{self.name} space has {len(self.decisions)} decisions, got {len(values)} values")
        for v, d in zip(values, self.decisions):
            if not 0 <= v < d.size:
                raise ValueError(f"decision {d.name!r}: index {v} out of range 0..{d.size - 1}")
        return values

    def sample(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randrange(d.size) for d in self.decisions)

    def key(self, values: Sequence[int]) -> str:
        return spec_key(self.decode(values))

    def mutate(self, values: Sequence[int], rng: random.Random, tries: int = 50) -> tuple[int, ...]:
        """Change one uniformly chosen decision to another choice; retried until the architecture changes."""
        values = self.check(values)
        old = self.key(values)
        mutable = [i for i, d in enumerate(self.decisions) if d.size > 1]
        if not mutable:
            return values
        child = values
        for _ in range(tries):
            i = rng.choice(mutable)
            new = rng.randrange(self.decisions[i].size - 1)
            child = values[:i] + (new + (new >= values[i]),) + values[i + 1:]
            if self.key(child) != old:
                return child
        return child

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": d.name, "choices": list(d.choices)} for d in self.decisions]


def spec_key(spec: dict[str, Any]) -> str:
    """16 hex digits of SHA-1 over the spec's canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


SPACES: dict[str, Callable[..., SearchSpace]] = {}


def register_space(name: str):
    def wrap(cls):
        SPACES[name] = cls
        return cls

    return wrap


def _load_builtin() -> None:
    from . import macro, nasnet_space  # noqa: F401  (their @register_space)


def make_space(name: str, **options: Any) -> SearchSpace:
    """The registered space `name` built with `options` (unknown options are a ValueError)."""
    _load_builtin()
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; choose one of {', '.join(sorted(SPACES))}")
    return SPACES[name](**options)


def read_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():  # before: "not found", e.g. for a search's folder
        raise ModelError(f"{path}: is a folder, not an architecture file; give {path / 'best_arch.json'} "
                         "(a search's result) or another architecture JSON file")
    if not path.is_file():
        raise ModelError(f"{path}: architecture file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a JSON architecture ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: an architecture file is a JSON object")
    return data


def model_from_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(registered name, kwargs) of the network in an architecture file: a NASNet genotype
    (`nasfer-genotype/1`, built as `nasnet`) or a macro spec (`nasfer-macro/1`, built as `macro`)."""
    from .genotype import FORMAT as GENOTYPE_FORMAT, Genotype
    from .macro import FORMAT as MACRO_FORMAT, check_spec

    data = read_spec(path)
    if "format" not in data and not {"normal", "reduction"} & set(data):
        raise ModelError(f"{path}: not an architecture file (no 'format', no 'normal' or 'reduction' cell); give "
                         "a search's best_arch.json (a NASNet genotype or a macro-space spec)")
    fmt = data.get("format", GENOTYPE_FORMAT)
    if fmt == MACRO_FORMAT:
        return "macro", {"spec": check_spec(data, where=str(path))}
    if fmt == GENOTYPE_FORMAT:
        return "nasnet", {"genotype": Genotype.from_dict(data, where=str(path)).to_dict()}
    raise ModelError(f"{path}: unknown architecture format {fmt!r} (expected {GENOTYPE_FORMAT!r} or {MACRO_FORMAT!r})")
