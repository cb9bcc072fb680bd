"""Named actors shared by the whole suite.

``org`` ("Acme") has an ``owner``, an ``admin``, a ``member`` and a ``viewer``;
``other_org`` ("Globex") belongs to ``outsider``. Tests use real PostgreSQL and
Redis when DATABASE_URL / REDIS_URL point at them (as `make test` does).
"""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from django.test import Client

from tinko import services
from tinko.models import Membership, Role, User

PASSWORD = "correct horse battery staple 42"


@pytest.fixture(autouse=True)
def _clear_cache():
    # Rate-limit counters live in the cache (Redis in CI): start every test clean.
    cache.clear()
    yield
    cache.clear()


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
    """Process every queued background job with a real Dramatiq worker (Redis broker in CI).

    Call it after the enqueuing transaction committed (use
    ``django_capture_on_commit_callbacks(execute=True)`` inside ``db`` tests).
    """
    import dramatiq

    broker = dramatiq.get_broker()

    def run(timeout_ms: int = 10_000):
        worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
        worker.start()
        try:
            for queue in list(broker.get_declared_queues()):
                broker.join(queue, timeout=timeout_ms)
            worker.join()
        finally:
            # Stopping runs django_dramatiq's DbConnectionsMiddleware, which
            # closes the *calling* thread's connections: stop from a thread of
            # its own so the test's connection (and transaction) survive.
            stopper = threading.Thread(target=worker.stop)
            stopper.start()
            stopper.join()
            # A stopped worker leaves its consumer middleware on the global broker.
            broker.middleware[:] = [m for m in broker.middleware if getattr(m, "worker", None) is not worker]

    broker.flush_all()
    yield run
    broker.flush_all()
