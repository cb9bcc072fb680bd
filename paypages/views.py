"""The customer's pay pages. Thin: recovery.transitions opens and settles links, the provider runs the checkout.

Success is believed only from the PSP (``confirm_checkout`` re-fetches or
verifies), never from the customer's browser landing on the return address.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from payments.providers import CheckoutResult, ProviderUnavailable, checkout_provider
from paypages import presentation
from paypages.security import logo_origin, note_miss, pay_page
from recovery import transitions
from recovery.models import Payment, PaymentStatus, RecoveryLink
from tinko.models import hash_token

logger = logging.getLogger(__name__)


def find_link(token: str) -> RecoveryLink | None:
    """The link for ``token`` in any state, without counting an open."""
    if not token or len(token) > 100:
        return None
    return (
        RecoveryLink.objects.select_related("payment", "payment__organization", "payment__customer")
        .filter(token_hash=hash_token(token))
        .first()
    )


def not_found(request) -> HttpResponse:
    """The same plain page for every unknown token: nothing says whether it ever existed."""
    note_miss(request)
    return render(request, "paypages/not_found.html", {"lang": settings.LANGUAGE_CODE}, status=404)


def page_context(request, link, *, language: str, **extra) -> dict:
    payment = link.payment
    org = payment.organization
    customer = payment.customer
    request.csp_image_origin = logo_origin(org.logo_url)
    return {
        "token": request.resolver_match.kwargs["token"],
        "token_path": reverse("pay:page", args=[request.resolver_match.kwargs["token"]]),
        "lang": language,
        "languages": settings.LANGUAGES,
        "merchant": org.brand_name,
        "accent": org.accent_color,
        "accent_ink": presentation.ink_for(org.accent_color),
        "logo_url": org.logo_url if request.csp_image_origin else "",
        "support_email": org.support_email,
        "first_name": presentation.first_name(customer),
        "amount": presentation.amount_text(payment.amount, payment.currency, language=language, customer=customer),
        "description": payment.description,
        "copy": presentation.copy_for(payment.category),
        "copy_kind": presentation.copy_kind(payment.category),
        "csp_nonce": request.csp_nonce,
        **extra,
    }


def render_page(request, template, link, *, language, status=200, **extra):
    with translation.override(language):
        return render(request, template, page_context(request, link, language=language, **extra), status=status)


def closed_page(request, link, language):
    """The page for a link that cannot take a payment, or None if it can."""
    payment = link.payment
    if payment.status == PaymentStatus.RECOVERED:
        return render_page(request, "paypages/already_paid.html", link, language=language)
    if payment.status == PaymentStatus.CANCELLED:
        return render_page(request, "paypages/closed.html", link, language=language, status=410)
    if link.status not in RecoveryLink.LIVE:
        return render_page(request, "paypages/expired.html", link, language=language, status=410)
    return None


def _pay_url(token: str, language: str) -> str:
    return f"{reverse('pay:page', args=[token])}?lang={language}"


@pay_page
@require_GET
def page(request, token):
    link = find_link(token)
    if link is None:
        return not_found(request)
    transitions.open_link(link, now=timezone.now())
    language = presentation.choose_language(request, link.payment.customer)
    closed = closed_page(request, link, language)
    if closed is not None:
        return closed
    return render_page(
        request, "paypages/pay.html", link, language=language,
        cancelled=request.GET.get("cancelled") == "1", declined=request.GET.get("declined") == "1",
    )


# No CSRF token: with Referrer-Policy no-referrer the browser sends "Origin: null"
# on this POST, which Django's origin check refuses, and pay pages set no cookies.
# Forging it gains nothing: it only starts a checkout for the link whose secret
# token is in the address, and sends the customer to the PSP.
@csrf_exempt
@pay_page
@require_POST
def checkout(request, token):
    """Hand the customer to the PSP's checkout for the outstanding amount."""
    link = find_link(token)
    if link is None:
        return not_found(request)
    payment = link.payment
    language = presentation.choose_language(request, payment.customer)
    if link.status in RecoveryLink.LIVE and link.expires_at <= timezone.now():
        transitions.expire_link(link)
    closed = closed_page(request, link, language)
    if closed is not None:
        return closed
    provider, why = checkout_provider(payment)
    try:
        if provider is None:
            raise ProviderUnavailable(why)
        session = provider.create_checkout(
            payment=payment, link=link, token=token,
            success_url=f"{settings.SITE_URL}/pay/{token}/return/",
            cancel_url=f"{settings.SITE_URL}/pay/{token}/?cancelled=1",
            locale=language,
        )
    except ProviderUnavailable as exc:
        # The merchant hears about it from the log; the customer gets a way to reach them.
        logger.warning("pay page cannot start a checkout for payment %s: %s", payment.pk, exc)
        return render_page(request, "paypages/pay.html", link, language=language, status=503, unavailable=True)
    return redirect(session.url)


def settle(*, link, result: CheckoutResult) -> bool:
    """Record the PSP-confirmed payment under the payment's row lock. Idempotent (a webhook may have come first)."""
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update(of=("self",)).select_related("organization").get(pk=link.payment_id)
        )
        return transitions.recover(
            payment=payment, amount=result.amount or payment.amount, now=timezone.now(), link=link,
            detail=f"Paid on the pay page. {result.detail}".strip(),
        )


@pay_page
@require_GET
def checkout_return(request, token):
    link = find_link(token)
    if link is None:
        return not_found(request)
    payment = link.payment
    language = presentation.choose_language(request, payment.customer)
    if payment.status == PaymentStatus.RECOVERED:
        return redirect("pay:success", token=token)
    provider, why = checkout_provider(payment)
    try:
        if provider is None:
            raise ProviderUnavailable(why)
        result = provider.confirm_checkout(payment=payment, link=link, params=request.GET)
    except ProviderUnavailable as exc:
        logger.warning("pay page cannot confirm a checkout for payment %s: %s", payment.pk, exc)
        return render_page(request, "paypages/confirming.html", link, language=language)
    if result.status == CheckoutResult.PAID:
        settle(link=link, result=result)
        return redirect("pay:success", token=token)
    if result.status == CheckoutResult.PENDING:
        return render_page(request, "paypages/confirming.html", link, language=language)
    return redirect(_pay_url(token, language) + "&declined=1")


@pay_page
@require_GET
def success(request, token):
    link = find_link(token)
    if link is None:
        return not_found(request)
    language = presentation.choose_language(request, link.payment.customer)
    if link.payment.status != PaymentStatus.RECOVERED:
        return redirect(_pay_url(token, language))
    return render_page(request, "paypages/success.html", link, language=language)


@pay_page
@require_GET
def status(request, token):
    """Polled by the "confirming" page until the PSP's webhook has landed."""
    link = find_link(token)
    if link is None:
        return not_found(request)
    language = presentation.choose_language(request, link.payment.customer)
    if link.payment.status == PaymentStatus.RECOVERED:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("pay:success", args=[token])
        return response
    return render_page(request, "paypages/_confirming_status.html", link, language=language)
