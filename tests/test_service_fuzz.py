"""Property-based fuzzing of the service against its own /openapi.json (schemathesis, via WSGI).

Every generated request, valid or not, must get a documented status code with a body that matches
the documented schema and content type, and never a 5xx. Bounded to a few dozen examples per
operation so the whole module runs in well under a minute.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from fixtures_service import FakeFace, FakeRecognizer
from nasfer.service.app import create_app
from nasfer.service.config import ServeConfig
from nasfer.service.metrics import Metrics

FACES = [FakeFace((4, 4, 20, 20), "happy", 0.9), FakeFace((30, 2, 12, 12), "sad", 0.2)]

app = create_app(
    ServeConfig(max_upload_mb=1, max_pixels=4_000_000),
    recognizer=FakeRecognizer(faces=FACES),
    recognizer_factory=lambda detector: FakeRecognizer(faces=FACES, detector=detector),
    metrics=Metrics(),
)
schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
# raw bodies schemathesis has no sample file for: sent as bytes like application/octet-stream (else skipped)
for media_type in ("image/bmp", "image/tiff"):
    schemathesis.serializer.alias(media_type, "application/octet-stream")

# Conformance and robustness. Not `positive_data_acceptance`: a schema-valid body for image/jpeg is
# any byte string, which is rightly refused (415) when it is not actually a picture.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi(case):
    case.call_and_validate(checks=CHECKS)
