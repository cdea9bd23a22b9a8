"""Fuzz (issue 11, item 5): schemathesis against the service's own OpenAPI document (the ASGI app itself).

Every operation, positive (bodies that fit the documented schema) and negative (bodies that do not) cases:
no 5xx, every status documented, every reply matching its schema, and bodies that break the schema refused
with a 4xx. Bodies that fit the schema may still be refused with a documented 400 (a Pod with a quantity that
is not a number fits `{"type": "object"}`), so "positive data is accepted" is not a check here.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.integration


#: the ASGI transport starts the app's lifespan once (demo cluster, every component) and keeps it running
APP = create_app(Settings(cluster="demo", max_body_bytes=4 * 1024 * 1024))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_answers_within_its_documented_schema(case: Any) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
