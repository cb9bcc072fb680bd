"""PSP webhook endpoints: thin views over payments.inbox."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import inbox


def _receive(request, provider: str, public_id: str) -> JsonResponse:
    status, text = inbox.receive(
        provider=provider, public_id=public_id, body=request.body, headers=request.headers,
        remote_addr=request.META.get("REMOTE_ADDR"),
    )
    key = "detail" if status < 400 else "error"
    return JsonResponse({key: text}, status=status)


@csrf_exempt
@require_POST
def stripe_webhook(request, public_id: str):
    return _receive(request, "stripe", public_id)


@csrf_exempt
@require_POST
def razorpay_webhook(request, public_id: str):
    return _receive(request, "razorpay", public_id)
