"""Rules of the tenancy core that hold whatever page or API calls them."""

import threading

import pytest
from django.db import connection

from tests.conftest import make_user
from tinko import services
from tinko.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Role


def test_create_organization_makes_the_creator_owner_and_audits(owner):
    org = services.create_organization(name="Initech", owner=owner)
    assert Membership.objects.get(organization=org, user=owner).role == Role.OWNER
    assert AuditEvent.objects.filter(organization=org, action="organization.created", actor_user=owner).exists()


def test_organization_slugs_stay_unique_for_equal_names(owner):
    first = services.create_organization(name="Initech", owner=owner)
    second = services.create_organization(name="Initech", owner=owner)
    assert first.slug == "initech"
    assert second.slug == "initech-2"


def test_create_organization_rejects_unknown_timezone(owner):
    with pytest.raises(services.ValidationError):
        services.create_organization(name="Initech", owner=owner, timezone="Mars/Olympus")
    assert not Organization.objects.filter(name="Initech").exists()


def test_api_key_plaintext_is_not_stored(org, owner):
    key, plaintext = services.create_api_key(organization=org, name="CI", created_by=owner)
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert plaintext not in [str(v) for v in row.values()]
    assert plaintext.startswith(f"tk_{key.prefix}_")


def test_revoking_a_key_twice_audits_once(org, owner):
    key, _ = services.create_api_key(organization=org, name="CI", created_by=owner)
    services.revoke_api_key(api_key=key, actor=owner)
    services.revoke_api_key(api_key=key, actor=owner)
    assert AuditEvent.objects.filter(action="apikey.revoked", target_id=str(key.pk)).count() == 1


def test_last_owner_cannot_be_demoted(org, owner):
    membership = Membership.objects.get(organization=org, user=owner)
    with pytest.raises(services.TeamError):
        services.change_role(membership=membership, role=Role.ADMIN, actor=membership)
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_last_owner_cannot_be_removed(org, owner):
    membership = Membership.objects.get(organization=org, user=owner)
    with pytest.raises(services.TeamError):
        services.remove_member(membership=membership, actor=membership)
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_admin_cannot_grant_ownership(org, admin, member):
    admin_m = Membership.objects.get(organization=org, user=admin)
    member_m = Membership.objects.get(organization=org, user=member)
    with pytest.raises(services.TeamError):
        services.change_role(membership=member_m, role=Role.OWNER, actor=admin_m)
    member_m.refresh_from_db()
    assert member_m.role == Role.MEMBER


def test_invitation_must_be_accepted_by_the_invited_address(org, owner, outsider):
    owner_m = Membership.objects.get(organization=org, user=owner)
    invitation, _ = services.invite_member(organization=org, email="new@acme.test", role=Role.MEMBER, invited_by=owner_m)
    with pytest.raises(services.TeamError):
        services.accept_invitation(invitation=invitation, user=outsider)
    assert not Membership.objects.filter(organization=org, user=outsider).exists()
    assert Invitation.objects.get(pk=invitation.pk).status == "pending"


def test_new_invitation_replaces_the_pending_one(org, owner):
    owner_m = Membership.objects.get(organization=org, user=owner)
    first, _ = services.invite_member(organization=org, email="new@acme.test", role=Role.MEMBER, invited_by=owner_m)
    second, _ = services.invite_member(organization=org, email="NEW@acme.test", role=Role.ADMIN, invited_by=owner_m)
    first.refresh_from_db()
    assert first.status == "revoked"
    assert second.status == "pending"


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner():
    """The owner rows are locked, so concurrent demotions serialise and the second one is refused."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL row locks (set DATABASE_URL)")
    first = make_user("first@acme.test")
    org = services.create_organization(name="Acme", owner=first)
    second = make_user("second@acme.test")
    Membership.objects.create(user=second, organization=org, role=Role.OWNER)
    m1 = Membership.objects.get(user=first)
    m2 = Membership.objects.get(user=second)
    barrier = threading.Barrier(2)
    errors = []

    def demote(target, actor):
        from django.db import connections

        barrier.wait()
        try:
            services.change_role(membership=target, role=Role.ADMIN, actor=actor)
        except services.TeamError as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=demote, args=(m2, m1)), threading.Thread(target=demote, args=(m1, m2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 1
    assert len(errors) == 1


def test_client_ip_ignores_forwarded_for_without_trusted_proxies(rf, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert services.client_ip(request) == "10.0.0.1"


def test_client_ip_takes_the_address_the_trusted_proxy_appended(rf, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert services.client_ip(request) == "203.0.113.7"


def test_accepting_an_invitation_when_already_a_member_is_refused(org, owner, member):
    owner_m = Membership.objects.get(organization=org, user=owner)
    invitation, _ = services.invite_member(organization=org, email="other@acme.test", role=Role.ADMIN, invited_by=owner_m)
    Invitation.objects.filter(pk=invitation.pk).update(email=member.email)
    invitation.refresh_from_db()
    with pytest.raises(services.TeamError, match="already a member"):
        services.accept_invitation(invitation=invitation, user=member)
    assert Membership.objects.get(organization=org, user=member).role == Role.MEMBER


def test_organization_names_must_be_one_line(owner):
    with pytest.raises(services.ValidationError):
        services.create_organization(name="Acme\nBcc: evil@x.test", owner=owner)


def test_unknown_currency_is_refused(owner):
    with pytest.raises(services.ValidationError):
        services.create_organization(name="Initech", owner=owner, default_currency="XYZ")


def test_update_organization_audits_against_the_stored_values(org, owner):
    stale = Organization.objects.get(pk=org.pk)
    services.update_organization(organization=org, actor=owner, name="Acme One")
    services.update_organization(organization=stale, actor=owner, name="Acme Two")
    last = AuditEvent.objects.filter(action="organization.updated").order_by("-id").first()
    assert last.data["changes"]["name"] == {"from": "Acme One", "to": "Acme Two"}
