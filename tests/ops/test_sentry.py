"""Sentry is initialised from SENTRY_DSN at start-up (no network needed to initialise)."""

from __future__ import annotations

import json

from tests.ops.procs import DJANGO_SETUP, production_env, run_python

REPORT_SENTRY = DJANGO_SETUP + (
    "import json, dramatiq, sentry_sdk\n"
    "client = sentry_sdk.get_client()\n"
    "print(json.dumps({\n"
    "    'active': client.is_active(),\n"
    "    'dsn': client.dsn,\n"
    "    'environment': client.options.get('environment'),\n"
    "    'send_default_pii': client.options.get('send_default_pii'),\n"
    "    'integrations': sorted(client.integrations),\n"
    "    'broker_middleware': [type(m).__name__ for m in dramatiq.get_broker().middleware],\n"
    "}))\n"
)


def sentry_report(tmp_path, **variables) -> dict:
    result = run_python(REPORT_SENTRY, production_env(tmp_path, **variables))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sentry_is_initialised_with_the_dsn_and_both_integrations(tmp_path):
    report = sentry_report(tmp_path, SENTRY_DSN="https://public@127.0.0.1/1", SENTRY_ENVIRONMENT="staging")
    assert report["active"] is True
    assert report["dsn"] == "https://public@127.0.0.1/1"
    assert report["environment"] == "staging"
    assert report["send_default_pii"] is False
    assert {"django", "dramatiq"} <= set(report["integrations"])
    # Initialised before django_dramatiq built the broker, so jobs report errors too.
    assert "SentryMiddleware" in report["broker_middleware"]


def test_sentry_dsn_can_come_from_a_file(tmp_path):
    dsn_file = tmp_path / "sentry_dsn"
    dsn_file.write_text("https://fromfile@127.0.0.1/2\n")
    report = sentry_report(tmp_path, SENTRY_DSN_FILE=str(dsn_file))
    assert report["dsn"] == "https://fromfile@127.0.0.1/2"


def test_sentry_stays_off_without_a_dsn(tmp_path):
    report = sentry_report(tmp_path)
    assert report["active"] is False
    assert report["dsn"] is None
