from rest_framework.permissions import BasePermission

from tinko.models import ApiKey


class HasOrganizationApiKey(BasePermission):
    """Only requests authenticated by an active API key reach the API."""

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)
