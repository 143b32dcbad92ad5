"""Logging for the service: every line carries the request id (X-Request-ID) of the request it belongs to."""

from __future__ import annotations

import logging
import re
import sys
import uuid

FORMAT = "%(asctime)s %(levelname)s [%(process)d] [%(request_id)s] %(name)s: %(message)s"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token (<= 128 safe characters), else a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str:
    try:
        from flask import g, has_request_context
    except ImportError:  # pragma: no cover
        return "-"
    if has_request_context():
        return getattr(g, "request_id", "-")
    return "-"


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` (the current request's id, or '-') for the format above."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


def configure_logging(level: str = "info") -> logging.Logger:
    """One stderr handler on the `nasfer` logger (idempotent: calling again only changes the level)."""
    logger = logging.getLogger("nasfer")
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    if not any(getattr(h, "_nasfer_service", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RequestIdFilter())
        handler._nasfer_service = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger
