"""PSP webhook endpoints: thin views over payments.inbox."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import inbox
from tinko.webhook_guard import read_body, webhook_endpoint


def _receive(request, provider: str, public_id: str) -> JsonResponse:
    # A body over the limit is not read whole: its start is enough for the stub kept of it.
    body, size = read_body(request, limit=settings.TINKO_WEBHOOK_MAX_BODY, keep=settings.TINKO_WEBHOOK_STUB_BYTES)
    status, text = inbox.receive(
        provider=provider, public_id=public_id, body=body, headers=request.headers,
        remote_addr=request.META.get("REMOTE_ADDR"), size=size,
    )
    key = "detail" if status < 400 else "error"
    return JsonResponse({key: text}, status=status)


@csrf_exempt
@require_POST
@webhook_endpoint
def stripe_webhook(request, public_id: str):
    return _receive(request, "stripe", public_id)


@csrf_exempt
@require_POST
@webhook_endpoint
def razorpay_webhook(request, public_id: str):
    return _receive(request, "razorpay", public_id)
