"""The invitation a signed-out visitor opened, kept in their session until they sign up.

Only the token's holder may use an invitation, so the session keeps the token
itself (the database has only its hash) and the signup form looks the
invitation up again on every request: a revoke or expiry in between wins.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from tinko import services
from tinko.models import Invitation

SESSION_KEY = "tinko_invitation_token"


def remember(request, token: str) -> None:
    request.session[SESSION_KEY] = token


def forget(request, token: str | None = None) -> None:
    """Drop the pending token (only if it is ``token``, when given)."""
    if token is None or request.session.get(SESSION_KEY) == token:
        request.session.pop(SESSION_KEY, None)


def pending_invitation(request) -> tuple[Invitation, str] | tuple[None, None]:
    """The still-pending invitation held by this session, with its token; forgets a stale one."""
    if request is None or not hasattr(request, "session"):
        return None, None
    token = request.session.get(SESSION_KEY)
    if not token:
        return None, None
    invitation = services.find_invitation(token)
    if invitation is None or invitation.status != "pending":
        forget(request, token)
        return None, None
    return invitation, token


def login_url(token: str) -> str:
    """Sign in, then come back to the invitation to accept it."""
    return reverse("account_login") + "?" + urlencode({"next": reverse("invitation_accept", args=[token])})
