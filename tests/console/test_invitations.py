"""Inviting from the Team page: a valid invitation is e-mailed, malformed ones are form errors."""

import re

import pytest

from tinko.models import AuditEvent, Invitation, hash_token

INVITE = "/console/team/invite/"


def test_valid_invitation_emails_an_accept_link(owner_client, org, run_jobs, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(INVITE, {"email": "Newbie@Example.test", "role": "admin"})
    assert response.status_code == 302
    invitation = Invitation.objects.get(organization=org)
    assert (invitation.email, invitation.role, invitation.status) == ("Newbie@example.test", "admin", "pending")

    # run_jobs last: stopping the worker closes this thread's database connection.
    run_jobs()

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["Newbie@example.test"]
    token = re.search(r"http://testserver/invitations/([A-Za-z0-9_-]+)/", mailoutbox[0].body).group(1)
    assert hash_token(token) == invitation.token_hash


def test_valid_invitation_is_listed_and_audited(owner_client, org, owner):
    response = owner_client.post(INVITE, {"email": "newbie@example.test", "role": "viewer"}, follow=True)

    assert "Invitation sent to newbie@example.test" in response.content.decode()
    assert f'id="invitation-{Invitation.objects.get(organization=org).pk}"' in response.content.decode()
    event = AuditEvent.objects.get(organization=org, action="member.invited")
    assert event.data == {"email": "newbie@example.test", "role": "viewer"}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"email": "not-an-email", "role": "member"}, "Enter a valid email address."),
        ({"email": "someone@example.test", "role": "emperor"}, "Select a valid choice."),
        ({"email": "member@acme.test", "role": "viewer"}, "already a member of Acme"),
        ({"email": "MEMBER@acme.test", "role": "viewer"}, "already a member of Acme"),
        ({"email": "", "role": ""}, "This field is required."),
    ],
    ids=["bad-email", "unknown-role", "already-member", "already-member-other-case", "empty"],
)
def test_malformed_invitation_is_a_form_error_and_sends_nothing(
    owner_client, org, member, data, error, run_jobs, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(INVITE, data)
    assert response.status_code == 400
    content = response.content.decode()
    assert 'class="errorlist' in content
    assert error in content
    assert not Invitation.objects.exists()

    # run_jobs last: stopping the worker closes this thread's database connection.
    run_jobs()

    assert mailoutbox == []
