"""The bare DRF endpoint of the single-event ingestion benchmark.

It does what any API write must: parse the JSON body, authenticate the API key
(``ApiKeyAuthentication``), count the request in the per-key throttle
(``ApiKeyRateThrottle``) and insert one row: a ``tinko.AuditEvent``, chosen
because it needs no model or migration of its own. The ingestion endpoint is
measured against it in the same server, so the ratio shows what validation,
classification and planning cost on top of the unavoidable work.
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from tinko.api.authentication import ApiKeyAuthentication
from tinko.api.permissions import HasOrganizationApiKey
from tinko.api.throttling import ApiKeyRateThrottle
from tinko.models import AuditEvent


class BaselineView(APIView):
    # Stated rather than inherited, so a change of the API's defaults cannot
    # silently make the baseline cheaper than the endpoint it is compared with.
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasOrganizationApiKey]
    throttle_classes = [ApiKeyRateThrottle]

    def post(self, request):
        data = request.data
        reference = data.get("reference", "") if isinstance(data, dict) else ""
        event = AuditEvent.objects.create(
            organization=request.auth.organization,
            actor_api_key=request.auth,
            action="bench.baseline",
            target_label=str(reference)[:200],
        )
        return Response({"id": event.pk}, status=status.HTTP_201_CREATED)


def stripe_verify_only(request, public_id):
    """The webhook benchmark's baseline: find the account and verify the Stripe signature, nothing else."""
    import stripe
    from django.http import JsonResponse

    from payments.models import ProviderAccount

    account = ProviderAccount.objects.filter(provider="stripe", public_id=public_id).first()
    if account is None:
        return JsonResponse({"error": "no account"}, status=404)
    try:
        stripe.WebhookSignature.verify_header(
            request.body.decode(), request.headers.get("Stripe-Signature", ""), account.secret("webhook_secret"), 300
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return JsonResponse({"error": "bad signature"}, status=400)
    return JsonResponse({"detail": "verified"})
