from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.translation import gettext_lazy as _

from tinko.mail import inline_css, queue_email, site_context


class AccountAdapter(DefaultAccountAdapter):
    """allauth, the Tinko way: named users, invitations that verify, mail sent by a worker."""

    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "email_taken": _(
            "An account with this e-mail address already exists. Sign in, or reset your password if you forgot it."
        ),
    }

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=False)
        user.name = (form.cleaned_data.get("name") or "").strip()
        if commit:
            user.save()
        return user

    def _get_login_attempts_cache_key(self, request, **credentials) -> str:
        # allauth counts failed sign-ins per account ("key" in ACCOUNT_RATE_LIMITS["login_failed"]),
        # so five wrong passwords from anywhere lock the owner out. Counted per address and
        # account instead: a stranger's failures cannot lock out anyone signing in from elsewhere.
        from tinko.services import client_ip

        return f"{client_ip(request) or 'unknown'}:{super()._get_login_attempts_cache_key(request, **credentials)}"

    def is_email_verified(self, request, email: str) -> bool:
        # Set by SignupForm.signup for the duration of the signup request only,
        # once the invitation (whose token was mailed to this address) is accepted.
        invited = getattr(request, "tinko_invited_email", None)
        if invited and invited.lower() == email.lower():
            return True
        return super().is_email_verified(request, email)

    # Links in e-mails point at the public site (SITE_URL), whatever host the request came in on.
    def get_email_confirmation_url(self, request, emailconfirmation) -> str:
        return _on_site(super().get_email_confirmation_url(request, emailconfirmation))

    def get_reset_password_from_key_url(self, key: str) -> str:
        return _on_site(super().get_reset_password_from_key_url(key))

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render allauth's mail here, send it from a worker after the transaction commits.

        The request does not wait on the mail server, a failing server is
        retried with backoff (tinko.mail.send_email).
        """
        ctx = {
            "request": allauth_context.request,
            "email": email,
            # Without the sites framework allauth would sign mails with the
            # request's host name; they come from the product.
            "current_site": SimpleNamespace(name="Tinko", domain=urlsplit(settings.SITE_URL).netloc),
            **site_context(),
            **context,
        }
        message = self.render_mail(template_prefix, email, ctx)
        html = None
        if isinstance(message, EmailMultiAlternatives):
            html = next((body for body, mimetype in message.alternatives if mimetype == "text/html"), None)
        queue_email(subject=message.subject, body=message.body, to=list(message.to), html=inline_css(html) if html else None)


def _on_site(url: str) -> str:
    parts = urlsplit(url)
    return settings.SITE_URL + parts.path + (f"?{parts.query}" if parts.query else "")
