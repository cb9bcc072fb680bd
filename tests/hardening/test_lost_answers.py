"""A PSP answer lost around a Redis outage, with a real scheduler (1 s tick) and a real worker.

While Redis is down the scheduler claims the due re-charge every second and
every enqueue fails, so the attempt's claims pile up. Then Redis is back, the
worker re-charges, the PSP takes the money and its answer is lost (sandbox card
0408). The same-key retry budget counts PSP calls, not claims, so the attempt
is tried again with its key instead of being given up as a decline: the payment
ends ``recovered`` with exactly one charge.

Redis here is a redis-server of this test on a free port (stopped and started
by it); the shared one is never touched.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import SandboxCharge
from recovery import runner
from recovery.models import AttemptStatus, Payment, RecoveryAttempt, RetryPolicy
from tests.chaos.run import Redis
from tests.ops.test_metrics_live import Process, wait_until
from tests.recovery.conftest import api  # noqa: F401  (fixture)
from tests.recovery.test_runner import card, ingest


@pytest.mark.django_db(transaction=True)
def test_a_lost_psp_answer_during_a_redis_outage_ends_recovered_with_one_charge(api, tmp_path, settings):  # noqa: F811
    payment = ingest(api, payment_method=card("0408"))
    RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=None, quiet_hours_end=None)
    attempt = payment.attempts.get(kind="auto_retry", status=AttemptStatus.SCHEDULED)

    redis = Redis(tmp_path)
    redis.start()
    db = settings.DATABASES["default"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
        "TINKO_DOTENV": "", "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0", "CACHE_URL": f"redis://127.0.0.1:{redis.port}/1",
        "DRAMATIQ_NAMESPACE": f"tinko-lost-{uuid.uuid4().hex[:8]}", "TINKO_SCHEDULER_TICK": "1",
    }
    processes = [
        Process("worker", [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"], env, tmp_path),
        Process("scheduler", [sys.executable, "manage.py", "run_scheduler"], env, tmp_path),
    ]
    try:
        # Redis goes down; then the re-charge comes due and the scheduler claims it every second.
        redis.stop()
        RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now())
        wait_until(lambda: RecoveryAttempt.objects.get(pk=attempt.pk).claims >= runner.MAX_PSP_CALLS + 3,
                   what="the scheduler re-claiming the attempt while Redis is down", processes=processes, timeout=60)
        assert SandboxCharge.objects.count() == 0

        # Redis is back: the worker re-charges, the PSP charges and the answer is lost.
        redis.start()
        lost = wait_until(
            lambda: (a := RecoveryAttempt.objects.get(pk=attempt.pk)).psp_calls == 1 and a.status == AttemptStatus.SCHEDULED and a,
            what="the re-charge whose answer is lost", processes=processes, timeout=60)
        assert lost.claims > runner.MAX_PSP_CALLS
        assert "same idempotency key" in lost.outcome
        assert SandboxCharge.objects.count() == 1

        # Its retry comes due (the 5 minutes pass): the same key gets the first answer.
        RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
        wait_until(lambda: Payment.objects.get(pk=payment.pk).status == "recovered",
                   what="the payment ending recovered", processes=processes, timeout=60)
    finally:
        for process in processes:
            process.stop()
        redis.stop()

    done = RecoveryAttempt.objects.get(pk=attempt.pk)
    assert (done.status, done.psp_calls) == (AttemptStatus.SUCCEEDED, 2)
    charges = list(SandboxCharge.objects.all())
    assert len(charges) == 1 and charges[0].idempotency_key == done.idempotency_key
    assert not RecoveryAttempt.objects.filter(payment=payment, kind="auto_retry").exclude(pk=attempt.pk).exists()
