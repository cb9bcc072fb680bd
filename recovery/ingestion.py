"""Recording failure reports: upsert customer and payment, add the FailureEvent,
classify, plan — for one report or a thousand, in one transaction, in a handful
of queries (set-based, so batch ingestion keeps its throughput target).

The merchant API calls :func:`record_failures`; PSP webhooks will call it too
(with their own ``source``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from recovery import history, transitions
from recovery.classifier import classify
from recovery.holdout import draw_holdout_group
from recovery.models import Customer, FailureEvent, Payment, PaymentStatus, RecoveryAttempt, RetryPolicy
from recovery.planning import plan_payments
from recovery.reports import FailureReport, failure_codes
from tinko import bulk, metrics, orgconfig


@dataclass
class IngestResult:
    event: FailureEvent
    duplicate: bool
    payment: Payment
    next_attempt: RecoveryAttempt | None


def default_policy(organization) -> RetryPolicy:
    found = orgconfig.cached(organization.pk, "recovery.default_policy", lambda: bulk.fetch(
        RetryPolicy, Q(organization_id=organization.pk, is_default=True)
    ))
    policy = found[0] if found else None
    if policy is None:
        # Every org gets one when it is created (RecoveryConfig.ready); this covers
        # orgs that existed before the recovery engine.
        from recovery.services import create_default_policy

        policy = create_default_policy(organization)
    return policy


class PaymentRecovered(Exception):
    """Raised by ``record_failures(..., skip_recovered=True)``: a report's payment is already recovered.

    Raised inside the ingestion's savepoint, so nothing of the ingestion stays.
    """

    def __init__(self, payment):
        super().__init__(payment.reference)
        self.payment = payment


def record_failures(*, organization, reports: list[FailureReport], source: str = "api",
                    skip_recovered: bool = False, savepoint: bool = True) -> list[IngestResult]:
    """Record failure reports and (re)plan their payments; one result per report, in order.

    A report whose ``event_id`` was seen before (for this org and source) is a
    duplicate: it changes nothing and its result points at the first event.
    Concurrent reports with the same event id are absorbed by the unique
    constraint: the loser's transaction is run again and then sees the winner
    (so are customers and payments created at the same moment by two requests).

    ``skip_recovered``: a report of an already recovered payment records
    nothing and raises :class:`PaymentRecovered` (PSP webhooks: a late failure
    must not re-open a paid payment); checked under the payment's row lock.

    ``savepoint=False``: called inside a transaction whose owner runs it again as a whole on an
    IntegrityError (the API's ``Idempotency-Key``, tinko/api/idempotency.py), so no savepoint of its
    own and no retry here. Outside a transaction it changes nothing.
    """
    if not savepoint and transaction.get_connection().in_atomic_block:
        with transaction.atomic(savepoint=False):
            results = _record(organization=organization, reports=reports, source=source, skip_recovered=skip_recovered)
            metrics.failures_recorded(results, source=source)
            return results
    for attempt in range(3):
        try:
            with transaction.atomic():
                results = _record(organization=organization, reports=reports, source=source, skip_recovered=skip_recovered)
                metrics.failures_recorded(results, source=source)
                return results
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _customer_key(customer: dict) -> str:
    if customer.get("id"):
        return "id:" + customer["id"]
    if customer.get("email"):
        return "email:" + customer["email"]
    if customer.get("phone"):
        return "phone:" + customer["phone"]
    return ""


def _record(*, organization, reports, source, skip_recovered=False) -> list[IngestResult]:
    now = timezone.now()
    results: list[IngestResult | None] = [None] * len(reports)

    # 1. Duplicates: seen before, or earlier in this same batch.
    event_ids = {r.event_id for r in reports if r.event_id}
    single = _lookup_single(organization, reports[0], source, now) if len(reports) == 1 and bulk.is_postgresql() else None
    if single is not None:
        events = _with_payments(single.events)
    else:
        events = _seen_events(organization, source, event_ids) if event_ids else []
    seen = {event.external_id: event for event in events}
    fresh: list[tuple[int, FailureReport]] = []
    first_in_batch: dict[str, int] = {}
    duplicates_in_batch: list[tuple[int, int]] = []
    for index, report in enumerate(reports):
        if report.event_id and report.event_id in seen:
            event = seen[report.event_id]
            results[index] = IngestResult(event, True, event.payment, None)
        elif report.event_id and report.event_id in first_in_batch:
            duplicates_in_batch.append((index, first_in_batch[report.event_id]))
        else:
            if report.event_id:
                first_in_batch[report.event_id] = index
            fresh.append((index, report))

    if fresh:
        _record_fresh(organization=organization, fresh=fresh, source=source, now=now, results=results,
                      skip_recovered=skip_recovered, single=single)
    for index, original in duplicates_in_batch:
        first = results[original]
        results[index] = IngestResult(first.event, True, first.payment, first.next_attempt)
    duplicates = [r for r in results if r.duplicate and r.next_attempt is None]
    if duplicates:
        _attach_next_attempts(duplicates)
    return results


def _seen_where(organization, source, event_ids) -> Q:
    # ~Q(external_id="") lets PostgreSQL use the partial unique index on
    # (organization, source, external_id); without it, every report scans the table.
    return Q(organization_id=organization.pk, source=source, external_id__in=event_ids) & ~Q(external_id="")


def _seen_events(organization, source, event_ids) -> list[FailureEvent]:
    return _with_payments(bulk.fetch(FailureEvent, _seen_where(organization, source, event_ids)))


@dataclass
class _Single:
    """What a single report's one lookup found (PostgreSQL): its event if seen before, its customer and
    payment (row-locked), the ids of the rows it may create, and the history of the card the report names
    (``card_key``; planning uses it if the payment is new and ends up with that card)."""
    events: list
    customers: list | None
    payments: list
    ids: dict
    card_key: str = ""
    cards: dict | None = None


def _lookup_single(organization, report: FailureReport, source: str, now) -> _Single:
    """The four statements a single report starts with (its event id seen before? its customer, its payment,
    ids for new rows) in one round trip. Locks as they do, customer before payment; a report that turns out a
    duplicate holds them until its short transaction ends, and leaves its ids unused."""
    wanted, psp_of = _customers_wanted([(0, report)], now)
    queries = {}
    if report.event_id:
        queries["events"] = (FailureEvent, _seen_where(organization, source, {report.event_id}), None, False)
    if wanted:
        queries["customers"] = (Customer, _customers_where(organization, wanted, psp_of), "key", True)
    queries["payments"] = (Payment, Q(organization_id=organization.pk, reference__in=[report.reference]), "reference", True)
    card_key = _report_card_key(report)
    if card_key:
        # Read before the payment's scheduled attempts are cancelled: used only if the payment is new (it has none).
        statement, params = history.card_history_sql(organization_id=organization.pk, card_keys=[card_key], now=now)
        queries["cards"] = bulk.Rows(statement, params, 5)
    found, ids = bulk.fetch_together(list(queries.values()), counts={
        Customer: 1 if wanted else 0, Payment: 1, FailureEvent: 1, RecoveryAttempt: 1,
    })
    found = dict(zip(queries, found))
    return _Single(events=found.get("events", []), customers=found.get("customers"), payments=found["payments"], ids=ids,
                   card_key=card_key, cards=history.card_histories_from_rows(found["cards"]) if card_key else None)


_CARD_FIELDS = (("brand", "card_brand"), ("last4", "card_last4"), ("exp_month", "card_exp_month"),
                ("exp_year", "card_exp_year"), ("fingerprint", "card_fingerprint"))


def _report_card_key(report: FailureReport) -> str:
    """The card key a new payment gets from this report (Payment.card_key, after _apply_report)."""
    method = report.payment_method
    if not method:
        return ""
    probe = bulk.build(Payment)
    for name, attr in _CARD_FIELDS:
        if method.get(name):
            setattr(probe, attr, method[name])
    return probe.card_key


def _with_payments(events: list[FailureEvent]) -> list[FailureEvent]:
    if events:
        payments = Payment.objects.in_bulk({e.payment_id for e in events})
        for event in events:
            event.payment = payments[event.payment_id]
    return events


def _attach_next_attempts(results: list[IngestResult]) -> None:
    payment_ids = {r.payment.pk for r in results}
    upcoming = {}
    for attempt in RecoveryAttempt.objects.filter(payment_id__in=payment_ids, status__in=RecoveryAttempt.ACTIVE).order_by(
        "scheduled_for"
    ):
        upcoming.setdefault(attempt.payment_id, attempt)
    for result in results:
        result.next_attempt = upcoming.get(result.payment.pk)


CUSTOMER_FIELDS = {
    "id": "external_id", "email": "email", "phone": "phone", "name": "name", "locale": "locale", "timezone": "timezone",
    "provider_customer_id": "provider_customer_id",
}


class _Writes:
    """New rows and changed rows of one ingestion, written at the end in as few statements as possible.

    On PostgreSQL new rows get their ids from the sequences up front (one round
    trip) and go in with ``COPY``; a concurrent request that created the same
    customer or payment first makes ``COPY`` fail on the unique constraint,
    and :func:`record_failures` runs the whole ingestion again, which then
    finds and locks the row. Elsewhere (SQLite in local mode) the ORM inserts
    new customers and payments at once and everything else at the end.
    """

    def __init__(self):
        self.fast = bulk.is_postgresql()
        self.new: dict = {Customer: [], Payment: [], FailureEvent: [], RecoveryAttempt: []}
        self.pool: dict = {FailureEvent: [], RecoveryAttempt: []}
        # Ids drawn with a single report's lookup (_lookup_single), used by allocate() when they suffice.
        self.drawn: dict | None = None

    def reserve(self, model, objs) -> None:
        """Rows whose ids are needed before planning (customers, payments): see :meth:`allocate`."""
        if not objs:
            return
        if self.fast:
            self.new[model].extend(objs)
        else:
            model.objects.bulk_create(objs)

    def allocate(self, *, events: int, attempts: int) -> None:
        """Ids for the reserved rows, and for at most this many events and attempts, in one round trip."""
        if not self.fast:
            return
        counts = {Customer: len(self.new[Customer]), Payment: len(self.new[Payment]), FailureEvent: events,
                  RecoveryAttempt: attempts}
        drawn = self.drawn
        if drawn is not None and all(len(drawn[model]) >= n for model, n in counts.items()):
            ids = drawn
        else:
            ids = bulk.allocate_ids(counts)
        for model in (Customer, Payment):
            for obj, pk in zip(self.new[model], ids[model]):
                obj.id = pk  # the primary key; ``obj.pk = …`` is a property that costs more than the rest here
        for model in (FailureEvent, RecoveryAttempt):
            self.pool[model] = ids[model]

    def add(self, model, objs) -> None:
        """Rows nothing refers to before the end (events, attempts)."""
        self.new[model].extend(objs)

    def flush(self) -> None:
        if self.fast:
            for model in (FailureEvent, RecoveryAttempt):
                objs = self.new[model]
                pool = self.pool[model]
                if len(pool) < len(objs):
                    pool = pool + bulk.allocate_ids({model: len(objs) - len(pool)})[model]
                for obj, pk in zip(objs, pool):
                    obj.id = pk
            bulk.insert([(model, self.new[model]) for model in (Customer, Payment, FailureEvent, RecoveryAttempt)])
        else:
            for model in (FailureEvent, RecoveryAttempt):
                if self.new[model]:
                    model.objects.bulk_create(self.new[model])


def _customers_wanted(fresh, now) -> tuple[dict[str, dict], dict[str, str]]:
    """What the reports say of each customer, by key, and the PSP's customer id of the keys that name one."""
    wanted: dict[str, dict] = {}
    psp_of: dict[str, str] = {}
    for _, report in fresh:
        key = _customer_key(report.customer)
        if key:
            merged = wanted.setdefault(key, {})
            merged.update({CUSTOMER_FIELDS[k]: v for k, v in report.customer.items() if v})
            psp = report.customer.get("provider_customer_id") or report.provider_customer_id
            if psp:
                merged["provider_customer_id"] = psp_of[key] = psp
            if report.customer_fetched:
                merged["provider_fetched_at"] = now
    return wanted, psp_of


def _customers_where(organization, wanted, psp_of) -> Q:
    psps = sorted(set(psp_of.values()))
    return Q(organization_id=organization.pk) & (
        Q(key__in=wanted) | Q(provider_customer_id__in=psps) & ~Q(provider_customer_id="")
    )


def _customers(organization, fresh, now, writes: _Writes, found: list | None = None) -> dict[str, Customer]:
    """The reports' customers by key, found or created. A report fills in what
    it knows; it never blanks what an earlier one said.

    One person, two ids: a customer the merchant reported under its own id and
    named the PSP's customer id for is the customer of the PSP's reports under
    that id too; a customer known only from the PSP takes the merchant's id
    when the merchant's report names it.
    """
    wanted, psp_of = _customers_wanted(fresh, now)
    if not wanted:
        return {}
    if found is None:
        # Locked, in key order: two requests updating one customer take turns.
        found = bulk.fetch(Customer, _customers_where(organization, wanted, psp_of), order_by="key", lock=True)
    existing = {c.key: c for c in found}
    by_psp = {c.provider_customer_id: c for c in existing.values() if c.provider_customer_id}
    changed, new = [], []
    for key, data in wanted.items():
        customer = existing.get(key)
        psp = psp_of.get(key, "")
        if customer is None and psp in by_psp:
            customer = existing[key] = by_psp[psp]
            if key == f"id:{psp}":
                # The PSP reports, under its id, the customer the merchant reported under its own.
                data = {name: value for name, value in data.items() if name != "external_id"}
            elif customer.key == f"id:{psp}":
                # The merchant names the PSP's customer that Tinko knew only from the PSP: its id becomes the key.
                customer.key = key
                changed.append(customer)
        if customer is None:
            customer = bulk.build(
                Customer, organization_id=organization.pk, key=key, created_at=now, updated_at=now, **data
            )
            new.append(customer)
            existing[key] = customer
            continue
        dirty = False
        for name, value in data.items():
            if getattr(customer, name) != value:
                setattr(customer, name, value)
                dirty = True
        if dirty:
            customer.updated_at = now
            if customer not in changed:
                changed.append(customer)
    if new and not writes.fast:
        Customer.objects.bulk_create(new, ignore_conflicts=True)
        # Re-read: a concurrent request may have created some of them.
        for customer in Customer.objects.filter(organization=organization, key__in=[c.key for c in new]):
            existing[customer.key] = customer
    elif new:
        writes.reserve(Customer, new)
    bulk.update(Customer, changed, ["key", *CUSTOMER_FIELDS.values(), "provider_fetched_at", "updated_at"])
    return existing


def _record_fresh(*, organization, fresh, source, now, results, skip_recovered=False, single: _Single | None = None) -> None:
    writes = _Writes()
    if single is not None:
        writes.drawn = single.ids
    customers = _customers(organization, fresh, now, writes, found=single.customers if single else None)

    by_reference: dict[str, list[tuple[int, FailureReport]]] = {}
    for item in fresh:
        by_reference.setdefault(item[1].reference, []).append(item)
    for items in by_reference.values():
        items.sort(key=lambda item: item[1].occurred_at)
    references = sorted(by_reference)

    policy = default_policy(organization)
    policies = {policy.pk: policy}
    payments, created_refs = _payments(
        organization=organization, references=references, by_reference=by_reference, policy=policy, now=now,
        writes=writes, found=single.payments if single else None,
    )
    if skip_recovered:
        for payment in payments.values():
            if payment.status == PaymentStatus.RECOVERED:
                raise PaymentRecovered(payment)

    writes.allocate(events=len(fresh), attempts=len(references))

    policy_ids = {p.policy_id for p in payments.values() if p.policy_id and p.policy_id not in policies}
    if policy_ids:
        policies.update({p.pk: p for p in RetryPolicy.objects.filter(pk__in=policy_ids)})
    # Known payments keep their customer unless a report names another: load those in one query.
    by_id = {c.pk: c for c in customers.values()}
    customer_ids = {p.customer_id for p in payments.values() if p.customer_id} - set(by_id)
    if customer_ids:
        by_id.update({c.pk: c for c in Customer.objects.filter(pk__in=customer_ids)})
    for payment in payments.values():
        # As ``payment.organization = organization`` etc., a thousand times over (tinko.bulk.attach).
        bulk.attach(payment, "organization", organization)
        if payment.customer_id:
            bulk.attach(payment, "customer", by_id[payment.customer_id])
        bulk.attach(payment, "policy", policies.get(payment.policy_id, policy))

    # Events, classified. A batch repeats a few failures many times: each distinct one is classified once
    # (a Classification is immutable; the whole batch is classified by the rules loaded for its first event).
    events = []
    latest: dict[str, FailureEvent] = {}
    classified: dict[tuple, object] = {}
    for ref in references:
        payment = payments[ref]
        for index, report in by_reference[ref]:
            _apply_report(payment, report, customers)
            codes = failure_codes(report)
            key = (report.provider, payment.card_brand, *codes.values())
            c = classified.get(key)
            if c is None:
                c = classified[key] = classify(
                    organization=organization, provider=report.provider, card_brand=payment.card_brand, **codes
                )
            event = bulk.build(
                FailureEvent,
                organization_id=organization.pk,
                payment_id=payment.pk,
                source=source,
                external_id=report.event_id,
                occurred_at=report.occurred_at,
                received_at=now,
                raw=report.raw,
                **codes,
                **c.event_fields(),
            )
            events.append(event)
            results[index] = IngestResult(event, False, payment, None)
            if ref not in latest or report.occurred_at >= latest[ref].occurred_at:
                latest[ref] = event
    writes.add(FailureEvent, events)

    # Plans.
    replan = [payments[ref] for ref in references]
    previous = {p.pk: p.status for p in replan}
    cards = None
    if single is not None and single.cards is not None and created_refs and replan[0].card_key == single.card_key:
        cards = single.cards  # a new payment: no attempt of its own was cancelled since the lookup read them
    planned = plan_payments(
        organization=organization, payments=replan, latest=latest, now=now, created=created_refs, writes=writes,
        cards=cards,
    )
    writes.flush()
    # New payments went in with their final state (PostgreSQL); the rest is updated here.
    stored = replan if not writes.fast else [p for p in replan if p.reference not in created_refs]
    transitions.recovery_started(organization_id=organization.pk,
                                 payments=[payments[ref] for ref in sorted(created_refs)])
    transitions.save_plans(replan, written=stored, fields=PAYMENT_UPDATE_FIELDS, previous=previous)
    for result in results:
        if result is not None and not result.duplicate:
            result.next_attempt = planned.get(result.payment.reference)


PAYMENT_UPDATE_FIELDS = [
    "provider", "provider_payment_id", "customer", "amount", "currency", "description", "metadata", "card_brand",
    "card_last4", "card_exp_month", "card_exp_year", "card_fingerprint", "status", "category", "status_reason",
    "limit_code", "failure_count", "first_failed_at", "last_failed_at", "recovery_ends_at", "policy", "updated_at",
    "provider_account", "provider_customer_id", "provider_payment_method_id", "provider_retry_at",
]


def _new_payment(organization, reference, first: FailureReport, policy, now) -> Payment:
    payment = bulk.build(
        Payment,
        organization_id=organization.pk,
        reference=reference,
        provider=first.provider,
        amount=first.amount,
        currency=first.currency,
        first_failed_at=first.occurred_at,
        last_failed_at=first.occurred_at,
        recovery_ends_at=first.occurred_at + timedelta(days=policy.recovery_window_days),
        policy_id=policy.pk,
        holdout_group=draw_holdout_group(policy),
        created_at=now,
        updated_at=now,
    )
    payment.organization = organization
    return payment


def _payments(*, organization, references, by_reference, policy, now, writes: _Writes,
              found: list | None = None) -> tuple[dict[str, Payment], set[str]]:
    """The payments for ``references`` (known ones row-locked) and which of them are new.

    References are locked in sorted order, so two batches touching the same
    payments queue up instead of deadlocking.
    """
    if found is None:
        found = bulk.fetch(
            Payment, Q(organization_id=organization.pk, reference__in=references), order_by="reference", lock=True
        )
    payments = {p.reference: p for p in found}
    missing = [ref for ref in references if ref not in payments]
    new = [_new_payment(organization, ref, by_reference[ref][0][1], policy, now) for ref in missing]
    if new and not writes.fast:
        Payment.objects.bulk_create(new, ignore_conflicts=True)
        new = list(
            Payment.objects.select_for_update().filter(organization=organization, reference__in=missing).order_by("reference")
        )
    else:
        writes.reserve(Payment, new)
    payments.update((p.reference, p) for p in new)
    return payments, set(missing)


def _apply_report(payment: Payment, report: FailureReport, customers) -> None:
    """Fold one report into its payment: newer facts win, missing facts keep what we knew."""
    payment.provider = report.provider
    payment.amount = report.amount
    payment.currency = report.currency
    if report.provider_payment_id:
        payment.provider_payment_id = report.provider_payment_id
    if report.description:
        payment.description = report.description
    if report.metadata:
        payment.metadata = report.metadata
    key = _customer_key(report.customer)
    if key:
        bulk.attach(payment, "customer", customers[key])
    if report.provider_account_id:
        payment.provider_account_id = report.provider_account_id
        if getattr(report.provider_account, "pk", None) == report.provider_account_id:
            payment.provider_account = report.provider_account
    if report.provider_customer_id:
        payment.provider_customer_id = report.provider_customer_id
    if report.provider_payment_method_id:
        payment.provider_payment_method_id = report.provider_payment_method_id
    if report.provider == "stripe" and report.provider_account_id:
        # Each report of the PSP says whether it will retry by itself (None: it will not).
        payment.provider_retry_at = report.provider_retry_at
    method = report.payment_method
    if method:
        for name, attr in _CARD_FIELDS:
            if method.get(name):
                setattr(payment, attr, method[name])
    payment.failure_count += 1
    if report.occurred_at < payment.first_failed_at:
        payment.first_failed_at = report.occurred_at
    payment.last_failed_at = max(payment.last_failed_at, report.occurred_at)
    payment.updated_at = timezone.now()
