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
    "    'max_request_body_size': client.options.get('max_request_body_size'),\n"
    "    'scrubber_denylist': getattr(client.options.get('event_scrubber'), 'denylist', None),\n"
    "    'scrubber_recursive': getattr(client.options.get('event_scrubber'), 'recursive', None),\n"
    "    'before_send': getattr(client.options.get('before_send'), '__qualname__', None),\n"
    "    'before_send_transaction': getattr(client.options.get('before_send_transaction'), '__qualname__', None),\n"
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


def test_sentry_gets_no_request_bodies_and_scrubs_form_field_names_at_any_depth(tmp_path):
    from sentry_sdk.scrubber import DEFAULT_DENYLIST

    report = sentry_report(tmp_path, SENTRY_DSN="https://public@127.0.0.1/1")
    assert report["max_request_body_size"] == "never"
    # Sentry compares field names in lower case.
    assert {name.lower() for name in DEFAULT_DENYLIST} <= set(report["scrubber_denylist"])
    assert {"password1", "password2", "oldpassword", "code", "key", "token", "secret"} <= set(report["scrubber_denylist"])
    assert report["scrubber_recursive"] is True
    assert report["before_send"] == report["before_send_transaction"] == "sentry_before_send"


# A real error report through the WSGI entry point, taken off the client instead
# of sent: a POST to an invitation link with a password in the body, on a
# database without tables (so: a 500).
CAPTURE_ERROR_EVENT = DJANGO_SETUP + (
    "import io, json, sentry_sdk\n"
    "from django.core.handlers.wsgi import WSGIHandler\n"
    "from sentry_sdk.transport import Transport\n"
    "from wsgiref.util import setup_testing_defaults\n"
    "events = []\n"
    "class Keep(Transport):\n"
    "    def capture_envelope(self, envelope):\n"
    "        events.extend(item.payload.json for item in envelope.items if item.type == 'event')\n"
    "client = sentry_sdk.get_client()\n"
    "client.transport.kill()\n"
    "client.transport = Keep(client.options)\n"
    "csrf = 'c' * 32\n"
    "body = f'csrfmiddlewaretoken={csrf}&password1=hunter2-password&code=123456&note=visible'.encode()\n"
    "page = 'https://tinko.example.com/invitations/S3cr3t-invitation-token-value/'\n"
    "environ = {\n"
    "    'REQUEST_METHOD': 'POST', 'PATH_INFO': '/invitations/S3cr3t-invitation-token-value/',\n"
    "    'QUERY_STRING': 'email=invitee%40acme.test', 'HTTP_HOST': 'tinko.example.com',\n"
    "    'wsgi.url_scheme': 'https', 'HTTP_X_FORWARDED_PROTO': 'https', 'HTTP_REFERER': page + '?from=mail',\n"
    "    'HTTP_COOKIE': f'csrftoken={csrf}', 'CONTENT_TYPE': 'application/x-www-form-urlencoded',\n"
    "    'CONTENT_LENGTH': str(len(body)), 'wsgi.input': io.BytesIO(body),\n"
    "}\n"
    "setup_testing_defaults(environ)\n"
    "statuses = []\n"
    "b''.join(WSGIHandler()(environ, lambda status, headers, exc_info=None: statuses.append(status)))\n"
    "sentry_sdk.flush()\n"
    "print(json.dumps({'status': statuses[0], 'events': events}))\n"
)


def test_an_error_report_carries_no_url_token_query_string_or_form_body(tmp_path):
    result = run_python(CAPTURE_ERROR_EVENT, production_env(tmp_path, SENTRY_DSN="https://public@127.0.0.1/1"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"].startswith("500")
    (event,) = report["events"]
    assert event["request"]["url"] == "https://tinko.example.com/invitations/<token>/"
    assert event["request"]["headers"]["Referer"] == "https://tinko.example.com/invitations/<token>/"
    assert "query_string" not in event["request"]
    assert not event["request"].get("data")
    sent = json.dumps(event)
    for secret in ("S3cr3t-invitation-token-value", "invitee", "hunter2-password", "123456"):
        assert secret not in sent
    # The log line of the same error is masked too.
    assert "Internal Server Error: /invitations/<token>/" in result.stderr
    assert "S3cr3t-invitation-token-value" not in result.stderr


def test_sentry_dsn_can_come_from_a_file(tmp_path):
    dsn_file = tmp_path / "sentry_dsn"
    dsn_file.write_text("https://fromfile@127.0.0.1/2\n")
    report = sentry_report(tmp_path, SENTRY_DSN_FILE=str(dsn_file))
    assert report["dsn"] == "https://fromfile@127.0.0.1/2"


def test_sentry_stays_off_without_a_dsn(tmp_path):
    report = sentry_report(tmp_path)
    assert report["active"] is False
    assert report["dsn"] is None
