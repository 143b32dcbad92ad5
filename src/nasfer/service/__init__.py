"""The HTTP service: `create_app(config, recognizer)` (Flask factory), its routes, web client and OpenAPI.

Run it with `nasfer serve` (gunicorn) or `nasfer serve --dev` (Flask's server).
"""

from __future__ import annotations

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServeConfig":
        from .config import ServeConfig

        return ServeConfig
    raise AttributeError(f"module 'nasfer.service' has no attribute {name!r}")
