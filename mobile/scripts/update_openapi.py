"""Write mobile/openapi.json: the OpenAPI document a default `nasfer serve` publishes at /openapi.json.

The app's typed client (mobile/src/api/) is tested against this copy (src/api/schema.test.ts), and
tests/test_mobile_contract.py fails when it differs from what the service serves now, so a change to
the API is noticed on both sides. After changing the API, run from the repository root:
    PYTHONPATH=$PWD/src python mobile/scripts/update_openapi.py
"""

from __future__ import annotations

import json
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "openapi.json"


def served_spec() -> dict:
    """GET /openapi.json from the service built with its default configuration (shipped model, Haar)."""
    from nasfer.service import create_app
    from nasfer.service.config import ServeConfig
    from nasfer.service.metrics import Metrics

    app = create_app(ServeConfig(), metrics=Metrics())
    response = app.test_client().get("/openapi.json")
    if response.status_code != 200:
        raise SystemExit(f"/openapi.json answered HTTP {response.status_code}")
    return response.get_json()


def render(spec: dict) -> str:
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def main() -> None:
    TARGET.write_text(render(served_spec()))
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
