"""create_api_key <org-slug> <name>: prints only the key, for scripts."""

import os
import re
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from tinko.models import ApiKey, AuditEvent

KEY_RE = re.compile(r"tk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")


def create_key(*args):
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_prints_only_a_key_that_opens_the_api(client, org):
    out, err = create_key(org.slug, "Deploy script")

    key = out.removesuffix("\n")
    assert KEY_RE.fullmatch(key), out
    assert out.count("\n") == 1
    assert err == ""
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert response.json()["organization"]["slug"] == org.slug
    assert response.json()["api_key"]["name"] == "Deploy script"


def test_key_creation_is_audited_as_system(org):
    create_key(org.slug, "Deploy script")

    api_key = ApiKey.objects.get(name="Deploy script")
    assert api_key.created_by is None
    event = AuditEvent.objects.get(action="apikey.created", target_id=str(api_key.pk))
    assert event.actor_label == "system"
    assert event.actor_user is None


def test_unknown_organization_is_an_error(db):
    with pytest.raises(CommandError, match="No organization with the slug 'nope'"):
        create_key("nope", "Deploy script")
    assert not ApiKey.objects.exists()


def test_blank_name_is_an_error(org):
    with pytest.raises(CommandError, match="Give the key a name"):
        create_key(org.slug, "  ")
    assert not ApiKey.objects.exists()


def _manage(*args):
    """Run manage.py as a script would, against the test database."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.django_db(transaction=True)
def test_script_gets_exactly_one_line_on_stdout(client, org):
    result = _manage("create_api_key", org.slug, "CI")

    assert result.returncode == 0, result.stderr
    assert KEY_RE.fullmatch(result.stdout.removesuffix("\n")), result.stdout
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {result.stdout.strip()}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_script_error_goes_to_stderr_with_a_non_zero_exit():
    result = _manage("create_api_key", "nope", "CI")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "No organization with the slug 'nope'" in result.stderr
