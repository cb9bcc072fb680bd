"""A new PSP is one package registered in one place: ingestion, re-charges and the pay page find it in the registry."""

from __future__ import annotations

import pytest

from payments import providers
from recovery import runner
from recovery.models import AttemptStatus, Payment, RecoveryAttempt, RetryPolicy
from tests.recovery.conftest import Api, report

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(api_key, default_rules):
    return Api(api_key[1])


@pytest.fixture
def acmepay(monkeypatch):
    """Register the test package the way a new PSP is: one more entry in PROVIDER_MODULES."""
    monkeypatch.setattr(providers, "PROVIDER_MODULES", (*providers.PROVIDER_MODULES, "tests.payments.acmepay"))
    monkeypatch.setattr(providers, "_modules_loaded", False)
    yield
    from tests.payments import acmepay as package

    providers._registry.pop("acmepay", None)
    package.CHARGES.clear()
    # Imported again (and registered again) by the next test that lists it.
    import sys

    sys.modules.pop("tests.payments.acmepay", None)


def test_a_registered_provider_is_in_every_provider_list(acmepay):
    assert ("acmepay", "AcmePay") in providers.provider_choices()
    assert "acmepay" in providers.provider_names()
    from payments.forms import PaymentFilterForm

    assert ("acmepay", "AcmePay") in list(PaymentFilterForm().fields["provider"].choices)


def test_an_unregistered_provider_is_refused_at_ingestion(api):
    response = api.post("events/payment_failed", report(reference="acme-1", provider="acmepay"))

    assert response.status_code == 400
    assert "provider" in response.json()["error"]["fields"]


def test_a_new_provider_works_by_registration_alone(acmepay, api):
    response = api.post("events/payment_failed", report(reference="acme-1", provider="acmepay"))
    assert response.status_code == 201, response.content
    payment = Payment.objects.get(reference="acme-1")
    assert payment.provider == "acmepay" and payment.provider_label == "AcmePay"

    recharger, why = providers.recharge_provider(payment)
    checkout, _ = providers.checkout_provider(payment)
    assert (type(recharger).__name__, why, type(checkout).__name__) == ("AcmePayProvider", "", "AcmePayProvider")

    # The engine re-charges through it like any provider: planned, claimed, charged, recovered.
    RetryPolicy.objects.update(quiet_hours_start=None, quiet_hours_end=None)
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    assert attempt.kind == "auto_retry"
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.QUEUED, claims=1)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED
    payment.refresh_from_db()
    assert payment.status == "recovered"
    assert payment.recovered_attempt_id == attempt.pk


def test_the_api_schema_lists_a_registered_provider(acmepay, api):
    schema = api.client.get("/api/schema/?format=json").json()
    # The enum's component name may carry a suffix (drf-spectacular tells apart same-named enums).
    enums = [c["enum"] for name, c in schema["components"]["schemas"].items()
             if name.startswith("Provider") and "enum" in c and "stripe" in c["enum"]]
    assert enums and all({"acmepay", "stripe", "other"} <= set(enum) for enum in enums)
