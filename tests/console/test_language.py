"""The console speaks English, Hindi and Spanish: each person's choice, else their browser's; catalogues kept current."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import translation

from tests.conftest import login
from tinko.formatting import format_day, format_money, format_when
from tinko.models import User

pytestmark = pytest.mark.django_db


def test_catalogues_hold_every_console_string_translated_and_compiled():
    """Like the pay pages' test, and also current: extracting the source again finds nothing new or gone."""
    from tinko.management.commands.console_messages import problems

    assert problems() == []


def test_browser_language_is_the_default(owner, org):
    client = login(owner)
    page = client.get("/console/payments/", headers={"accept-language": "es-MX,es;q=0.9,en;q=0.5"}).content.decode()
    assert '<html lang="es">' in page and "<title>Pagos · Tinko</title>" in page


def test_a_persons_choice_wins_over_the_browser_and_is_kept(owner, org):
    client = login(owner)
    response = client.post("/language/", {"language": "hi", "next": "/console/team/"},
                           headers={"accept-language": "es"})
    assert response.status_code == 302 and response["Location"] == "/console/team/"
    assert User.objects.get(pk=owner.pk).language == "hi"
    # A new session on another browser, asking for Spanish, still gets Hindi.
    page = login(owner).get("/console/team/", headers={"accept-language": "es"}).content.decode()
    assert '<html lang="hi">' in page and "<h1>टीम</h1>" in page


def test_an_unknown_language_changes_nothing(owner, org):
    client = login(owner)
    client.post("/language/", {"language": "xx", "next": "/console/"})
    assert User.objects.get(pk=owner.pk).language == ""
    assert '<html lang="en">' in client.get("/console/").content.decode()


def test_signed_out_pages_switch_by_cookie(db):
    client = Client()
    client.post("/language/", {"language": "es", "next": "/accounts/login/"})
    assert '<html lang="es">' in client.get("/accounts/login/").content.decode()


def test_the_switcher_offers_the_three_languages_each_in_its_own_name(owner_client):
    page = owner_client.get("/console/").content.decode()
    for code, name in (("en", "English"), ("hi", "हिन्दी"), ("es", "Español")):
        assert f'<option value="{code}" lang="{code}"' in page and f">{name}</option>" in page


@pytest.mark.parametrize(("language", "money", "day", "when"), [
    ("en", "$1,234.50", "Dec 3, 2026", "Dec 3, 2026, 7:48\u202fPM"),
    ("es", "1.234,50\xa0US$", "3 dic 2026", "3 dic 2026, 19:48"),
    ("hi", "$1,234.50", "3 दिस॰ 2026", "3 दिस॰ 2026, 7:48 pm"),
])
def test_money_and_dates_follow_the_language(language, money, day, when):
    moment = datetime.datetime(2026, 12, 3, 14, 18, tzinfo=datetime.UTC)
    kolkata = ZoneInfo("Asia/Kolkata")
    with translation.override(language):
        assert format_money(123450, "USD") == money
        assert format_day(moment, tz=kolkata) == day
        assert format_when(moment, tz=kolkata) == when


def test_console_money_is_formatted_for_the_persons_language(owner, org):
    from tests.console_recovery.conftest import ingest

    ingest(org, reference="money-1", amount=123450, currency="EUR")
    owner.language = "es"
    owner.save(update_fields=["language"])
    listing = login(owner).get("/console/payments/").content.decode()
    assert "1.234,50\xa0€" in listing
