"""Running a comparison for the command line and the console; the console's runs live in the cache.

A console run is a Dramatiq job (``recovery.tasks.simulate_policies``): the page
stores the request under a run id scoped to the organization, the job writes its
progress and then its results there, and the page polls them. Nothing is
written to the database: a simulation moves no money and sends nothing.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone

from recovery.history import TIMING_HISTORY
from recovery.models import FailureEvent, FailureSource, Payment, PaymentStatus, RetryPolicy
from recovery.reports import FAILURE_FIELDS
from recovery.simulator.population import PopulationModel, from_records, generate
from recovery.simulator.results import compare

MAX_SIZE = 5000
RECENT_DAYS = 90
RUN_TTL = 3600  # seconds a console run's progress and results are kept


def tinko_default_policy() -> RetryPolicy:
    """The policy a new organization starts with (recovery.services.create_default_policy), unsaved."""
    return RetryPolicy(name="Tinko default", is_default=True)


def recent_failures(organization, *, days: int = RECENT_DAYS, limit: int = MAX_SIZE) -> list[dict]:
    """The organization's payments that failed in the last ``days``, as the simulator's records (first report each)."""
    since = timezone.now() - timedelta(days=days)
    events = (
        FailureEvent.objects.filter(organization=organization, occurred_at__gt=since)
        .exclude(source=FailureSource.ATTEMPT)
        .select_related("payment", "payment__customer")
        .order_by("payment_id", "occurred_at", "pk")
        .distinct("payment_id")[:limit]
    )
    events = list(events)
    # The customers' earlier recoveries, for payday and reading-hour inference (as recovery.history loads them).
    paid: dict[int, list] = {}
    customer_ids = {e.payment.customer_id for e in events if e.payment.customer_id}
    for customer_id, payment_id, when in Payment.objects.filter(
        customer_id__in=customer_ids, status=PaymentStatus.RECOVERED, recovered_at__gt=since - TIMING_HISTORY
    ).values_list("customer_id", "pk", "recovered_at"):
        paid.setdefault(customer_id, []).append((payment_id, when))
    records = []
    for event in events:
        payment, customer = event.payment, event.payment.customer
        codes = {name: getattr(event, name) for name in FAILURE_FIELDS if getattr(event, name)}
        records.append({
            "category": event.category, "codes": codes, "amount": payment.amount, "currency": payment.currency,
            "brand": payment.card_brand, "failed_at": event.occurred_at,
            "timezone": (customer.timezone if customer else "") or organization.timezone,
            "email": bool(customer and customer.email), "phone": bool(customer and customer.phone),
            # Only what was known when the payment failed.
            "paid_history": sorted(
                t for pk, t in paid.get(payment.customer_id, []) if t < event.occurred_at and pk != payment.pk
            ),
        })
    return records


def simulate(*, policies, model: PopulationModel, size: int, seed: int, organization=None, source: str = "synthetic",
             progress=None) -> dict:
    """Compare ``policies`` ((name, RetryPolicy) pairs) with the fixed baselines; see results.compare."""
    if source == "recent":
        if organization is None:
            raise ValueError("replaying recent failures needs an organization")
        records = recent_failures(organization, limit=size)
        if not records:
            raise ValueError(f"the organization has no failed payments in the last {RECENT_DAYS} days")
        failures = from_records(model, records, seed=seed)
    else:
        failures = generate(model, size=size, seed=seed)
    result = compare(policies=policies, model=model, size=len(failures), seed=seed, progress=progress,
                     failures=failures, organization=organization)
    result["source"] = source
    return result


# --- Console runs --------------------------------------------------------------------------------------------


def _key(organization_id: int, run_id: str) -> str:
    return f"simulator:{organization_id}:{run_id}"


def start_run(*, organization, request: dict) -> str:
    """Store a run's request and return its id; the caller enqueues the job after this."""
    run_id = secrets.token_urlsafe(12)
    cache.set(_key(organization.pk, run_id), {"request": request, "done": 0, "total": request["size"],
                                             "status": "queued"}, RUN_TTL)
    return run_id


def get_run(organization_id: int, run_id: str) -> dict | None:
    return cache.get(_key(organization_id, run_id))


def update_run(organization_id: int, run_id: str, **changes) -> None:
    run = get_run(organization_id, run_id) or {}
    run.update(changes)
    cache.set(_key(organization_id, run_id), run, RUN_TTL)


def execute_run(organization_id: int, run_id: str) -> None:
    """The job's work: run the stored request, writing progress every 100 failures and the results at the end."""
    from tinko.models import Organization

    run = get_run(organization_id, run_id)
    if run is None:
        return
    organization = Organization.objects.get(pk=organization_id)
    request = run["request"]
    found = {p.pk: p for p in RetryPolicy.objects.filter(organization=organization, pk__in=request["policy_ids"])}
    policies = [(found[pk].name, found[pk]) for pk in request["policy_ids"] if pk in found]
    if request.get("tinko_default"):
        policies.append((str(tinko_default_policy().name), tinko_default_policy()))
    update_run(organization_id, run_id, status="running")
    try:
        result = simulate(
            policies=policies, model=PopulationModel.from_dict(request["model"]), size=request["size"],
            seed=request["seed"], organization=organization, source=request["source"],
            progress=lambda done, total: update_run(organization_id, run_id, done=done, total=total),
        )
    except ValueError as exc:
        update_run(organization_id, run_id, status="failed", error=str(exc))
        return
    update_run(organization_id, run_id, status="done", result=result, done=result["size"], total=result["size"])
