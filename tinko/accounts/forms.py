from __future__ import annotations

from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.account.internal.flows.manage_email import email_already_exists
from allauth.core import context
from allauth.core.exceptions import ImmediateHttpResponse
from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _

from tinko import services
from tinko.accounts import pending
from tinko.models import Organization, Role, User


class SignupForm(AllauthSignupForm):
    """Sign up and start an organization, or, holding an invitation, join the inviting one.

    allauth calls :meth:`save` (user, then our :meth:`signup` hook, then the
    user's EmailAddress); we wrap it in one transaction so that a failure at any
    step leaves no user without an organization behind.
    """

    name = forms.CharField(
        label=_("Your name"),
        max_length=User._meta.get_field("name").max_length,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    organization_name = forms.CharField(
        label=_("Organization name"),
        max_length=Organization._meta.get_field("name").max_length,
        help_text=_("Your business as your team will see it. You can change it later."),
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )

    field_order = ["name", "email", "organization_name", "password1", "password2"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # allauth's SignupView does not hand the request to its form; its
        # middleware keeps the current one in a context variable.
        self.request = context.request
        self.invitation, self.invitation_token = pending.pending_invitation(self.request)
        if self.invitation is not None:
            # The invited person joins the inviting organization instead of creating one.
            del self.fields["organization_name"]
            self.fields["email"].initial = self.invitation.email
            self.fields["email"].help_text = _("The address the invitation was sent to.")

    @property
    def invitation_role(self) -> str:
        return Role(self.invitation.role).label if self.invitation else ""

    @property
    def invitation_login_url(self) -> str:
        return pending.login_url(self.invitation_token) if self.invitation else ""

    def validate_unique_email(self, value):
        # ACCOUNT_PREVENT_ENUMERATION stays on for the rest of allauth (password
        # reset, adding an address), where it would turn a taken address into a
        # silent "verification sent"; on signup we answer clearly instead (see
        # the comment next to the setting).
        # allauth's own uniqueness check (case-insensitive), told to always raise.
        email, _exists = email_already_exists(value, always_raise=True)
        return email

    def clean(self):
        cleaned_data = super().clean()
        email = cleaned_data.get("email")
        if self.invitation is not None and email and email.lower() != self.invitation.email.lower():
            self.add_error(
                "email",
                _(
                    "This invitation was sent to %(invited)s. Sign up with that address to join "
                    "%(organization)s, or ask for an invitation to %(email)s."
                )
                % {"invited": self.invitation.email, "organization": self.invitation.organization.name, "email": email},
            )
        return cleaned_data

    def save(self, request):
        with transaction.atomic():
            return super().save(request)

    def signup(self, request, user):
        """allauth's hook after the user row is saved: give the user an organization."""
        if self.invitation is None:
            services.create_organization(name=self.cleaned_data["organization_name"], owner=user)
            return
        try:
            membership = services.accept_invitation(invitation=self.invitation, user=user, request=request)
        except services.TeamError:
            # Revoked or expired between the form check and now: undo the
            # signup (the exception leaves save()'s transaction) and show the
            # invitation page, which says what happened.
            raise ImmediateHttpResponse(redirect("invitation_accept", token=self.invitation_token)) from None
        # The token reached this person through the invited address, which
        # proves they read that mailbox as well as the link allauth would send;
        # AccountAdapter.is_email_verified reads this to store the address as
        # verified, so mandatory verification does not ask a second time.
        request.tinko_invited_email = self.invitation.email
        pending.forget(request, self.invitation_token)
        messages.success(
            request,
            _("You joined %(organization)s as %(role)s.")
            % {"organization": membership.organization.name, "role": Role(membership.role).label},
        )

