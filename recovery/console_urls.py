"""The console's Retry policies pages, included into the console namespace (tinko/console/urls.py)."""

from django.urls import path

from recovery import console
from recovery.simulator import console as simulator_console

urlpatterns = [
    path("policies/", console.policy_list, name="policies"),
    path("policies/new/", console.policy_create, name="policy_create"),
    path("policies/preview/", console.policy_preview, name="policy_preview"),
    path("policies/<int:pk>/", console.policy_edit, name="policy_edit"),
    path("policies/<int:pk>/default/", console.policy_set_default, name="policy_set_default"),
    path("policies/<int:pk>/delete/", console.policy_delete, name="policy_delete"),
    path("policies/compare/", simulator_console.compare, name="compare_policies"),
    path("policies/compare/<str:run_id>/", simulator_console.compare_progress, name="compare_policies_run"),
]
