"""Named actors shared by the whole suite.

``org`` ("Acme") has an ``owner``, an ``admin``, a ``member`` and a ``viewer``;
``other_org`` ("Globex") belongs to ``outsider``. Tests use real PostgreSQL and
Redis when DATABASE_URL / REDIS_URL point at them (as `make test` does).
"""

from __future__ import annotations

import contextlib

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import translation
from django.test import Client

from tinko import services
from tinko.models import Membership, Role, User

PASSWORD = "correct horse battery staple 42"


@pytest.fixture(autouse=True)
def _clear_cache():
    # Rate-limit counters live in the cache (Redis in CI): start every test clean.
    # The classifier's per-process rules go too: transactional tests flush the
    # rule table, and a rule cached from before would point at a deleted row.
    from recovery.classifier import invalidate_rules
    from tinko import orgconfig

    cache.clear()
    invalidate_rules()
    # Organizations' cached configuration (tinko/orgconfig.py): a transactional test's flush may let a new
    # organization start again at version 0.
    orgconfig.forget()
    yield
    cache.clear()
    # Requests through the test client leave their language active on this thread (LocaleMiddleware
    # activates and never resets): a Spanish page must not make the next test's e-mails Spanish.
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def default_rules():
    """The classifier's default rules, for transactional tests.

    They come from a data migration, and a transactional test's flush empties
    the table for the tests after it; this puts them back (the migration's own
    function), then makes every cache reload them.
    """
    from importlib import import_module

    from django.apps import apps

    from recovery.classifier import invalidate_rules
    from recovery.models import ClassificationRule

    if not ClassificationRule.objects.filter(organization=None).exists():
        import_module("recovery.migrations.0002_default_classification_rules").add_default_rules(apps, None)
    invalidate_rules()


def make_user(email: str, *, verified: bool = True) -> User:
    from allauth.account.models import EmailAddress

    user = User.objects.create_user(email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
    return user


@pytest.fixture
def owner(db):
    return make_user("owner@acme.test")


@pytest.fixture
def org(owner):
    return services.create_organization(name="Acme", owner=owner, timezone="Europe/Berlin", default_currency="EUR")


def _member(org, email, role):
    user = make_user(email)
    Membership.objects.create(user=user, organization=org, role=role)
    return user


@pytest.fixture
def admin(org):
    return _member(org, "admin@acme.test", Role.ADMIN)


@pytest.fixture
def member(org):
    return _member(org, "member@acme.test", Role.MEMBER)


@pytest.fixture
def viewer(org):
    return _member(org, "viewer@acme.test", Role.VIEWER)


@pytest.fixture
def outsider(db):
    return make_user("outsider@globex.test")


@pytest.fixture
def other_org(outsider):
    return services.create_organization(name="Globex", owner=outsider)


def login(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def owner_client(owner, org):
    return login(owner)


@pytest.fixture
def viewer_client(viewer):
    return login(viewer)


@pytest.fixture
def outsider_client(outsider, other_org):
    return login(outsider)


@pytest.fixture
def api_key(org, owner):
    """(ApiKey, plaintext) for ``org``."""
    return services.create_api_key(organization=org, name="Test key", created_by=owner)


@pytest.fixture
def run_jobs():
    """Process every queued background job, taking the messages off the configured broker (Redis in CI).

    The messages really travel through the broker; the actors then run in the
    test's own thread, so they see the test's (uncommitted) data. Call it
    after the enqueuing transaction committed (use
    ``django_capture_on_commit_callbacks(execute=True)`` inside ``db`` tests).
    tests/ops/test_background.py runs real Worker threads on committed data.
    """
    import dramatiq

    broker = dramatiq.get_broker()

    def run(max_rounds: int = 5):
        for _ in range(max_rounds):
            processed = 0
            for queue in list(broker.get_declared_queues()):
                consumer = broker.consume(queue, prefetch=1, timeout=50)
                try:
                    for message in consumer:
                        if message is None:
                            break
                        try:
                            broker.get_actor(message.actor_name).fn(*message.args, **message.kwargs)
                        finally:
                            consumer.ack(message)
                        processed += 1
                finally:
                    consumer.close()
            if not processed:
                return

    broker.flush_all()
    yield run
    broker.flush_all()


def always_quiet(payment) -> None:
    """Make the payment's policy quiet all day but one minute, in the customer's zone: now is inside them."""
    from zoneinfo import ZoneInfo

    from django.utils import timezone as dj_timezone

    from recovery.models import RetryPolicy

    customer = payment.customer
    zone = ZoneInfo(customer.timezone if customer and customer.timezone else payment.organization.timezone)
    local = dj_timezone.now().astimezone(zone)
    RetryPolicy.objects.filter(pk=payment.policy_id).update(
        quiet_hours_start=(local - timedelta(minutes=1)).time().replace(second=0, microsecond=0),
        quiet_hours_end=(local - timedelta(minutes=2)).time().replace(second=0, microsecond=0),
    )


@contextlib.contextmanager
def locked_elsewhere(model, pk):
    """Another transaction (a thread on its own connection) holds ``model`` row ``pk``'s lock while the block runs."""
    import threading

    from django.db import connection, transaction

    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                model.objects.select_for_update().get(pk=pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()
