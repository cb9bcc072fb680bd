"""Data for the console page tests: Acme has a key and a pending invitation, Globex has its own."""

from __future__ import annotations

import pytest

from tests.conftest import login
from tinko import services
from tinko.models import Membership


def membership_of(user, org) -> Membership:
    return Membership.objects.get(user=user, organization=org)


@pytest.fixture
def admin_client(admin):
    # Replaces pytest-django's superuser fixture of the same name: here it is Acme's admin.
    return login(admin)


@pytest.fixture
def member_client(member):
    return login(member)


@pytest.fixture
def acme_key(org, owner):
    key, _plaintext = services.create_api_key(organization=org, name="Acme deploy key", created_by=owner)
    return key


@pytest.fixture
def acme_invitation(org, owner):
    invitation, _token = services.invite_member(
        organization=org, email="invitee@acme.test", role="member", invited_by=membership_of(owner, org)
    )
    return invitation


@pytest.fixture
def globex_data(other_org, outsider):
    key, _ = services.create_api_key(organization=other_org, name="Globex deploy key", created_by=outsider)
    invitation, _ = services.invite_member(
        organization=other_org, email="invitee@globex.test", role="admin", invited_by=membership_of(outsider, other_org)
    )
    services.update_organization(organization=other_org, actor=outsider, display_name="Globex Payments")
    return {"key": key, "invitation": invitation}
