"""The console's "Compare policies" page: start a simulation, watch its progress, read the comparison.

Every member may run one (it moves no money and sends nothing). The run is a
background job; its progress and results are kept for an hour, scoped to the
organization.
"""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from recovery.simulator import service
from recovery.simulator.forms import FAMILY_LABELS, CompareForm
from tinko.tenancy import role_required


@require_http_methods(["GET", "POST"])
@role_required()
def compare(request):
    if request.method == "POST":
        form = CompareForm(request.POST, organization=request.organization)
        if form.is_valid():
            run_id = service.start_run(organization=request.organization, request=form.run_request())
            from recovery.tasks import simulate_policies

            org_id = request.organization.pk
            transaction.on_commit(lambda: simulate_policies.send(org_id, run_id))
            return redirect(reverse("console:compare_policies") + f"?run={run_id}")
        return render(request, "recovery/console/compare.html", {"form": form, "run_id": None}, status=400)
    run_id = request.GET.get("run") or None
    if run_id is not None and service.get_run(request.organization.pk, run_id) is None:
        raise Http404
    run = service.get_run(request.organization.pk, run_id) if run_id else None
    # The form shows the run's own choices, so a second run changes one thing at a time.
    initial = CompareForm.initial_from(run["request"]) if run else None
    return render(request, "recovery/console/compare.html", {
        "form": CompareForm(organization=request.organization, initial=initial), **_run_context(run, run_id),
    })


@require_GET
@role_required()
def compare_progress(request, run_id):
    """The run's progress bar, then its results (htmx polls this until the run is done)."""
    run = service.get_run(request.organization.pk, run_id)
    if run is None:  # another organization's run, or expired
        raise Http404
    return render(request, "recovery/console/_compare_run.html", _run_context(run, run_id))


def _run_context(run, run_id) -> dict:
    """The run, and its per-category figures as rows of (category label, [% of value per strategy])."""
    context = {"run": run, "run_id": run_id, "categories": []}
    result = (run or {}).get("result")
    if result:
        families = sorted({family for row in result["results"] for family in row["per_category"]})
        context["categories"] = [
            (FAMILY_LABELS.get(family, family),
             [row["per_category"].get(family, {}).get("value_recovered_pct") for row in result["results"]])
            for family in families
        ]
    return context
