"""Console pages of the recovery: Acme's payments (through the real ingestion path) and clients by role."""

from __future__ import annotations

import pytest

from recovery.ingestion import record_failures
from recovery.reports import parse_report
from tests.conftest import login
from tests.recovery.conftest import report


def ingest(org, **overrides):
    """Report a failure for ``org`` through the real ingestion path; the recovery engine's report() shape."""
    (result,) = record_failures(organization=org, reports=[parse_report(report(**overrides))])
    return result.payment


@pytest.fixture
def member_client(member):
    return login(member)


@pytest.fixture
def admin_client(admin):
    return login(admin)
