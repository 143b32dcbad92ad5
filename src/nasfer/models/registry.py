"""Model registry: `@register_model` factories, `create_model(name, **kwargs)`, `list_models()`.

Every factory takes `num_classes` and `in_channels` keyword arguments and returns an nn.Module
mapping (N, in_channels, 48, 48) to logits (N, num_classes). Checkpoints store the name and
kwargs, so a model is rebuilt by the same call that made it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from ..errors import ModelError

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(fn: Callable[..., Any] | None = None, *, name: str | None = None):
    """Decorator: register `fn` under `name` (default: the function name with '_' -> '-')."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        key = name or f.__name__.replace("_", "-")
        if key in _REGISTRY and _REGISTRY[key] is not f:
            raise ValueError(f"model {key!r} registered twice")
        _REGISTRY[key] = f
        return f

    return wrap(fn) if fn is not None else wrap


def _load_builtin() -> None:
    # Importing the model modules runs their @register_model decorators.
    from . import baselines, ensemble, macro, nasnet  # noqa: F401


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def resolved_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with every argument the factory of `name` leaves at its default filled in.

    Two (name, kwargs) pairs build the same network exactly when their resolved kwargs are equal, so
    `{"N": 2}` and `{}` are one NASNet (N defaults to 2). Raises ModelError for an unknown name or
    arguments the factory does not take.
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    try:
        bound = inspect.signature(_REGISTRY[name]).bind(**kwargs)
    except TypeError as exc:
        raise ModelError(f"model {name!r} does not take these arguments: {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def create_model(name: str, **kwargs: Any):
    """Build the registered model `name`; unknown names give a ModelError listing the choices."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)
