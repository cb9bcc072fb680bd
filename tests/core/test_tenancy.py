import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from tinko.models import ApiKey, Membership, Role
from tinko.tenancy import get_object_for_org, require_role, resolve_membership, role_required


def test_get_object_for_org_finds_own_object(org, api_key):
    key, _ = api_key
    assert get_object_for_org(org, ApiKey, pk=key.pk) == key


def test_get_object_for_org_404s_for_another_orgs_object(other_org, api_key):
    key, _ = api_key
    with pytest.raises(Http404):
        get_object_for_org(other_org, ApiKey, pk=key.pk)


def test_get_object_for_org_404s_for_garbage_ids(org):
    with pytest.raises(Http404):
        get_object_for_org(org, ApiKey, pk="not-a-number")


def _request_as(user, org):
    request = RequestFactory().post("/x")
    request.user = user
    request.membership = Membership.objects.get(user=user, organization=org) if org else None
    request.organization = org
    return request


@role_required(Role.ADMIN)
def admin_view(request):
    return HttpResponse("ok")


def test_role_required_lets_higher_roles_through(org, owner):
    assert admin_view(_request_as(owner, org)).status_code == 200


def test_role_required_refuses_lower_roles(org, member):
    with pytest.raises(PermissionDenied):
        admin_view(_request_as(member, org))


def test_role_required_sends_org_less_users_to_create_one(owner):
    response = admin_view(_request_as(owner, None))
    assert response.status_code == 302
    assert response["Location"] == "/console/organizations/new/"


def test_require_role_lets_the_role_and_higher_through(org, owner, admin):
    require_role(_request_as(owner, org), Role.ADMIN)
    require_role(_request_as(admin, org), Role.ADMIN)


def test_require_role_refuses_lower_roles_naming_the_role(org, member):
    with pytest.raises(PermissionDenied, match="^This needs the Admin role or higher.$"):
        require_role(_request_as(member, org), Role.ADMIN)


def test_require_role_refuses_a_request_without_an_organization(owner):
    with pytest.raises(PermissionDenied):
        require_role(_request_as(owner, None), Role.VIEWER)


def test_resolve_membership_keeps_every_membership_on_the_request(org, other_org, owner):
    Membership.objects.create(user=owner, organization=other_org, role=Role.VIEWER)
    request = RequestFactory().get("/console/")
    request.user = owner
    request.session = {}

    membership = resolve_membership(request)

    assert membership.organization == org
    assert [m.organization.name for m in request.memberships] == ["Acme", "Globex"]
