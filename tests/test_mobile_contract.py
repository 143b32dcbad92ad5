"""The React Native app's API contract (mobile/): its committed copy of the OpenAPI document must be
what the service publishes now, and the service answers its tests replay must fit that document.

mobile/openapi.json is what the app's types are tested against (mobile/src/api/schema.test.ts); if the
service's API changes, this test fails until `python mobile/scripts/update_openapi.py` is run and the
app's types follow. Needs no node.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MOBILE = ROOT / "mobile"
FIXTURES = MOBILE / "src" / "api" / "__fixtures__"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"mobile_{name}", MOBILE / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served() -> dict:
    return _load_script("update_openapi").served_spec()


def test_committed_openapi_copy_is_what_the_service_serves(served):
    script = _load_script("update_openapi")
    committed = (MOBILE / "openapi.json").read_text()
    assert committed == script.render(served), (
        "mobile/openapi.json differs from the service's /openapi.json: the API changed. Run "
        "`PYTHONPATH=$PWD/src python mobile/scripts/update_openapi.py`, update mobile/src/api/types.ts "
        "if the schema test asks for it, and re-record mobile/src/api/__fixtures__ if answers changed.")


def _validator(spec: dict, schema: dict):
    from openapi_schema_validator import OAS30Validator

    # resolve #/components/... references against the whole document
    return OAS30Validator({**schema, "components": spec["components"]})


def _schema_for(spec: dict, path: str, method: str, status: int) -> dict:
    response = spec["paths"][path][method]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


RECORDED = {
    "emotions_astronaut.json": ("/v1/emotions", "post"),
    "emotions_noface.json": ("/v1/emotions", "post"),
    "emotions_uncertain.json": ("/v1/emotions", "post"),
    "error_400.json": ("/v1/emotions", "post"),
    "error_413.json": ("/v1/emotions", "post"),
    "error_415.json": ("/v1/emotions", "post"),
    "error_422.json": ("/v1/emotions", "post"),
    "error_503.json": ("/v1/emotions", "post"),
    "healthz.json": ("/healthz", "get"),
    "model.json": ("/v1/model", "get"),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_answers_fit_the_published_schema(served, name):
    recorded = json.loads((FIXTURES / name).read_text())
    path, method = RECORDED[name]
    _validator(served, _schema_for(served, path, method, recorded["status"])).validate(recorded["body"])


def test_every_fixture_is_checked():
    custom = {"emotions_custom.json", "model_custom.json"}  # another model's labels: checked below
    assert {p.name for p in FIXTURES.glob("*.json")} == set(RECORDED) | custom


def test_custom_label_answers_fit_the_schema_but_for_their_labels(served):
    """The service's document enumerates the default model's labels; a fine-tuned model has its own."""
    body = json.loads((FIXTURES / "emotions_custom.json").read_text())["body"]
    labels = body["model"]["labels"]
    assert labels == ["calm", "tense", "smiling"]
    spec = json.loads(json.dumps(served))
    face = spec["components"]["schemas"]["Face"]
    face["properties"]["label"]["enum"] = labels
    face["properties"]["scores"]["required"] = labels
    face["properties"]["scores"]["properties"] = {k: face["properties"]["scores"]["additionalProperties"]
                                                  for k in labels}
    _validator(spec, _schema_for(spec, "/v1/emotions", "post", 200)).validate(body)
    card = json.loads((FIXTURES / "model_custom.json").read_text())["body"]
    _validator(served, _schema_for(served, "/v1/model", "get", 200)).validate(card)
    assert card["labels"] == labels
