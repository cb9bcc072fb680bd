"""One reading of phone numbers everywhere (tinko/phones.py): valid for the country, with its code, kept in E.164."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from recovery.reports import ReportInvalid, parse_customer, parse_report
from tinko import phones


@pytest.mark.parametrize("raw", ["+14155550123", "+1 415 555 0123", "+1 (415) 555-0123", " +1.415.555.0123 "])
def test_a_number_written_with_separators_is_read_as_e164(raw):
    assert phones.normalize(raw) == "+14155550123"
    assert phones.clean(raw) == "+14155550123"


@pytest.mark.parametrize("raw", [
    "4155550123",  # no country code: which country?
    "+15551234567",  # the right length, but no such US number
    "+1234567",
    "+44 7700 900123",  # Ofcom's drama range: never assigned
    "call me",
    "+1" + "2" * 40,
])
def test_a_number_without_its_country_code_or_not_valid_for_its_country_is_refused(raw):
    assert phones.normalize(raw) == ""
    assert not phones.is_e164(raw)
    with pytest.raises(ValidationError):
        phones.clean(raw)


def test_only_a_number_already_in_e164_counts_as_e164():
    assert phones.is_e164("+919876543210")
    assert not phones.is_e164("+91 98765 43210")
    assert phones.clean("  ") == ""


def test_a_failure_report_stores_the_customers_number_in_e164():
    report = parse_report({"reference": "order-1", "amount": 1000, "currency": "USD", "provider": "sandbox", "failure": {"code": "card_declined"},
                           "customer": {"id": "c1", "phone": "+91 98765 43210"}})
    assert report.customer["phone"] == "+919876543210"


def test_a_failure_report_with_an_invalid_number_is_refused_naming_the_field():
    with pytest.raises(ReportInvalid) as raised:
        parse_report({"reference": "order-1", "amount": 1000, "currency": "USD", "provider": "sandbox", "failure": {"code": "card_declined"},
                      "customer": {"id": "c1", "phone": "+15551234567"}})
    assert "E.164" in raised.value.errors["customer"]["phone"][0]


def test_a_psps_customer_record_with_an_invalid_number_keeps_the_rest():
    assert parse_customer({"email": "a@example.com", "phone": "+15551234567"}) == {
        **parse_customer({"email": "a@example.com"}), "phone": "",
    }


def test_a_customers_stored_phone_is_checked_by_the_same_reader():
    from recovery.models import Customer

    field = Customer._meta.get_field("phone")
    field.run_validators("+14155550123")
    # The right shape for E.164 but no such number (the old pattern accepted it).
    with pytest.raises(ValidationError):
        field.run_validators("+10000000000")
