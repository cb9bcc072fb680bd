"""Connecting an organization's Stripe and Razorpay accounts (writes; every change is audited).

Secrets are encrypted on the way in and never come back out to a page, a log
or an audit event: audit data names the account and the key's hint only.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from payments.models import AccountMode, ProviderAccount
from payments.providers import provider_for_account
from tinko.services import record_audit


def key_hint(value: str) -> str:
    """``sk_test_…4242``: the key's kind and its last four characters."""
    prefix = value.rsplit("_", 1)[0] + "_" if "_" in value else ""
    return f"{prefix[:16]}…{value[-4:]}"


def _stripe_mode(secret_key: str) -> str:
    if secret_key.startswith(("sk_live_", "rk_live_")):
        return AccountMode.LIVE
    if secret_key.startswith(("sk_test_", "rk_test_")):
        return AccountMode.TEST
    raise ValidationError({"secret_key": _("A Stripe secret key starts with sk_test_, sk_live_, rk_test_ or rk_live_.")})


def _razorpay_mode(key_id: str) -> str:
    if key_id.startswith("rzp_live_"):
        return AccountMode.LIVE
    if key_id.startswith("rzp_test_"):
        return AccountMode.TEST
    raise ValidationError({"key_id": _("A Razorpay key id starts with rzp_test_ or rzp_live_.")})


@transaction.atomic
def connect_account(*, organization, provider: str, name: str, secrets: dict, key_id: str = "", actor=None,
                    request=None) -> ProviderAccount:
    """Store a new connected account. ``secrets``: Stripe {secret_key, webhook_secret}; Razorpay {key_secret, webhook_secret}."""
    account = ProviderAccount(organization=organization, provider=provider, name=name)
    if provider == "stripe":
        account.mode = _stripe_mode(secrets["secret_key"])
        if not secrets["webhook_secret"].startswith("whsec_"):
            raise ValidationError({"webhook_secret": _("A Stripe webhook signing secret starts with whsec_.")})
        account.key_hint = key_hint(secrets["secret_key"])
    elif provider == "razorpay":
        account.mode = _razorpay_mode(key_id)
        account.key_id = key_id
        account.key_hint = key_id
    else:
        raise ValidationError({"provider": _("Tinko connects Stripe and Razorpay accounts.")})
    for key, value in secrets.items():
        account.set_secret(key, value)
    try:
        with transaction.atomic():
            account.save()
    except IntegrityError:
        raise ValidationError({"name": _("Another account of this organization has this name.")}) from None
    record_audit(
        organization=organization, action="provider_account.connected", actor=actor, request=request, target=account,
        data={"provider": provider, "name": name, "mode": account.mode, "key": account.key_hint},
    )
    return account


@transaction.atomic
def set_active(*, account: ProviderAccount, active: bool, actor=None, request=None) -> ProviderAccount:
    """Pause or resume an account: a paused one's webhooks get 404 and it re-charges nothing."""
    account = ProviderAccount.objects.select_for_update().get(pk=account.pk)
    if account.is_active == active:
        return account
    account.is_active = active
    account.updated_at = timezone.now()
    account.save(update_fields=["is_active", "updated_at"])
    record_audit(
        organization=account.organization, action="provider_account.enabled" if active else "provider_account.disabled",
        actor=actor, request=request, target=account, data={"provider": account.provider, "name": account.name},
    )
    return account


def test_connection(*, account: ProviderAccount, actor=None, request=None) -> tuple[bool, str]:
    """Call the PSP with the stored credentials (read only) and remember the answer; a success resumes paused re-charges."""
    ok, detail = provider_for_account(account).test_connection()
    account.last_checked_at = timezone.now()
    account.last_check_ok = ok
    account.last_check_detail = detail[:300]
    account.save(update_fields=["last_checked_at", "last_check_ok", "last_check_detail"])
    record_audit(
        organization=account.organization, action="provider_account.tested", actor=actor, request=request,
        target=account, data={"name": account.name, "ok": ok, "detail": detail[:300]},
    )
    if ok:
        resume_recharges(account=account, actor=actor, request=request)
    return ok, detail


@transaction.atomic
def pause_recharges(*, account: ProviderAccount, reason: str) -> bool:
    """The PSP refused the account's key during a re-charge: stop re-charging through it and tell the admins.

    Webhooks keep arriving (failures are still recorded and customers still get
    messages); only automatic re-charges wait. Returns False when they were
    already paused (the admins are told once).
    """
    from tinko.mail import queue_email
    from tinko.models import Membership, Role

    account = ProviderAccount.objects.select_for_update().select_related("organization").get(pk=account.pk)
    if account.recharges_paused_at is not None:
        return False
    account.recharges_paused_at = timezone.now()
    account.recharges_paused_reason = reason[:300]
    account.save(update_fields=["recharges_paused_at", "recharges_paused_reason"])
    organization = account.organization
    record_audit(organization=organization, action="provider_account.recharges_paused", target=account,
                 data={"provider": account.provider, "name": account.name, "reason": account.recharges_paused_reason})
    admins = list(Membership.objects.filter(organization=organization, role__in=[Role.ADMIN, Role.OWNER])
                  .values_list("user__email", flat=True))
    if admins:
        queue_email(
            subject=f"Tinko paused automatic re-charges through {account.name} ({organization.name})",
            body=(
                f"{account.get_provider_display()} refused the key of the connected account {account.name} "
                f"({account.key_hint}) during an automatic re-charge:\n\n{account.recharges_paused_reason}\n\n"
                "Nothing was charged. Tinko makes no automatic re-charge through this account until the key works "
                "again; failures are still recorded and customers still get their messages.\n\n"
                f"Enter the account's current keys or test the connection to resume:\n{settings.SITE_URL}/console/providers/\n"
            ),
            to=admins,
        )
    return True


def resume_recharges(*, account: ProviderAccount, actor=None, request=None) -> bool:
    """Clear a pause set by :func:`pause_recharges` (a working key again); False when there was none."""
    with transaction.atomic():
        resumed = ProviderAccount.objects.filter(pk=account.pk, recharges_paused_at__isnull=False).update(
            recharges_paused_at=None, recharges_paused_reason=""
        )
        if resumed:
            record_audit(organization=account.organization, action="provider_account.recharges_resumed", actor=actor,
                         request=request, target=account, data={"name": account.name})
    account.recharges_paused_at, account.recharges_paused_reason = None, ""
    return bool(resumed)


@transaction.atomic
def replace_secrets(*, account: ProviderAccount, secrets: dict, key_id: str = "", actor=None, request=None) -> ProviderAccount:
    """Replace some of an account's keys (rotation at the PSP). Blank values keep what is stored.

    The webhook URL stays the same, so the PSP's endpoint needs no change.
    """
    account = ProviderAccount.objects.select_for_update().get(pk=account.pk)
    secrets = {k: v for k, v in secrets.items() if v}
    if not secrets and not key_id:
        raise ValidationError(_("Enter at least one new key."))
    if account.provider == "stripe":
        if "secret_key" in secrets:
            if _stripe_mode(secrets["secret_key"]) != account.mode:
                raise ValidationError({"secret_key": _("The new key is for the other mode (test/live); connect a new account instead.")})
            account.key_hint = key_hint(secrets["secret_key"])
        if "webhook_secret" in secrets and not secrets["webhook_secret"].startswith("whsec_"):
            raise ValidationError({"webhook_secret": _("A Stripe webhook signing secret starts with whsec_.")})
    elif key_id:
        if _razorpay_mode(key_id) != account.mode:
            raise ValidationError({"key_id": _("The new key is for the other mode (test/live); connect a new account instead.")})
        account.key_id = account.key_hint = key_id
    for key, value in secrets.items():
        account.set_secret(key, value)
    account.updated_at = timezone.now()
    account.last_checked_at = account.last_check_ok = None
    account.last_check_detail = ""
    # New keys: re-charges refused for the old key may go again.
    account.recharges_paused_at, account.recharges_paused_reason = None, ""
    account.save()
    changed = sorted(secrets) + (["key_id"] if key_id else [])
    record_audit(
        organization=account.organization, action="provider_account.keys_replaced", actor=actor, request=request,
        target=account, data={"name": account.name, "replaced": changed, "key": account.key_hint},
    )
    return account
