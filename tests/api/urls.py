"""The project's URLs plus endpoints that fail on purpose, to test error handling under /api/."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import path
from django.views.decorators.http import require_POST
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from tinko.urls import urlpatterns as project_urlpatterns


class Explodes(APIView):
    def get(self, request):
        raise RuntimeError("boom")


class RejectsInput(APIView):
    class InputSerializer(serializers.Serializer):
        amount = serializers.IntegerField(min_value=1)
        currency = serializers.CharField(max_length=3)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class RaisesDjangoErrors(APIView):
    def get(self, request):
        raise Http404("No such payment in this organization.")

    def delete(self, request):
        raise PermissionDenied("Only owners may do this.")


def plain_view_explodes(request):
    raise RuntimeError("boom")


@require_POST
def plain_view_post_only(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/_test/explodes", Explodes.as_view()),
    path("api/v1/_test/rejects-input", RejectsInput.as_view()),
    path("api/v1/_test/django-errors", RaisesDjangoErrors.as_view()),
    path("api/v1/_test/plain-explodes", plain_view_explodes),
    path("api/v1/_test/plain-post-only", plain_view_post_only),
    path("console/_test/explodes", plain_view_explodes),
    *project_urlpatterns,
]
