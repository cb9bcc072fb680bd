"""wait_for_migrations: what Kubernetes' init containers run before a pod of a new release starts."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection


@pytest.mark.django_db
def test_returns_at_once_when_every_migration_is_applied(capsys):
    call_command("wait_for_migrations", "--timeout", "0")
    assert "Every migration is applied." in capsys.readouterr().out


@pytest.mark.django_db
def test_fails_after_the_timeout_naming_what_is_missing():
    # As if the release's migration Job had not run yet: the newest migration of an app is not recorded.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'onboarding' AND name = '0001_initial'")
    with pytest.raises(CommandError, match=r"Still not applied after 0 s: onboarding\.0001_initial"):
        call_command("wait_for_migrations", "--timeout", "0", "--interval", "0")
