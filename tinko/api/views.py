from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from tinko.api.serializers import MeSerializer


class MeView(APIView):
    @extend_schema(
        operation_id="me_retrieve",
        summary="The key's organization",
        description="Which organization this API key acts for. A cheap way to check that a key works.",
        responses={200: MeSerializer},
        tags=["account"],
    )
    def get(self, request):
        # request.auth is the ApiKey (tinko.api.authentication); it is the
        # only way to the organization, so a key never sees another tenant.
        return Response(MeSerializer(request.auth).data)
