from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import check_for_language
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from tinko import services
from tinko.accounts import pending
from tinko.models import Membership, Role, User
from tinko.tenancy import switch_organization


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request, token):
    """Show an invitation and let the invited person join.

    Signed out: remember the token so that signing up joins directly, or sign
    in and come back here. Signed in as the invited address: accept with a POST.
    """
    invitation = services.find_invitation(token)
    if invitation is None:
        raise Http404("No such invitation.")
    context = {
        "invitation": invitation,
        "organization": invitation.organization,
        "role": Role(invitation.role).label,
        "inviter": invitation.invited_by,
    }

    if invitation.status != "pending":
        pending.forget(request, token)
        context["already_member"] = (
            request.user.is_authenticated
            and Membership.objects.filter(user=request.user, organization=invitation.organization).exists()
        )
        # 410: the link was real but is used up; nothing was created.
        return render(request, "accounts/invitation_closed.html", context, status=410)

    if not request.user.is_authenticated:
        if request.method == "POST" and request.POST.get("action") == "dismiss":
            # The visitor wants their own organization, not this invitation.
            pending.forget(request, token)
            return redirect("account_signup")
        pending.remember(request, token)
        context["login_url"] = pending.login_url(token)
        return render(request, "accounts/invitation.html", context)

    context["logout_next"] = request.path
    if request.method == "POST":
        try:
            membership = services.accept_invitation(invitation=invitation, user=request.user, request=request)
        except services.TeamError as exc:
            # Another address than the invited one, or revoked/expired since the page was shown.
            context["error"] = " ".join(exc.messages)
            return render(request, "accounts/invitation.html", context, status=403)
        pending.forget(request, token)
        switch_organization(request, membership.organization_id)
        messages.success(
            request,
            _("You joined %(organization)s as %(role)s.")
            % {"organization": membership.organization.name, "role": Role(membership.role).label},
        )
        return redirect("console:home")

    context["email_matches"] = invitation.email.lower() == request.user.email.lower()
    return render(request, "accounts/invitation.html", context)


@require_POST
def set_language(request):
    """Switch the language: Django's cookie and redirect, and for a signed-in person their own choice, kept."""
    response = i18n.set_language(request)
    code = request.POST.get("language", "")
    if request.user.is_authenticated and code in {c for c, _name in settings.LANGUAGES} and check_for_language(code):
        User.objects.filter(pk=request.user.pk).update(language=code)
    return response
