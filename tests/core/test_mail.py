"""E-mail to users: stored encrypted, sent once by a worker, never lost to the broker."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from tinko import crypto
from tinko import mail as tinko_mail
from tinko.models import OutboundEmail


def test_queued_email_is_stored_encrypted_and_sent_by_the_job(db, run_jobs, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email = tinko_mail.queue_email(subject="Reset", body="key abc-SECRET-123", to=["a@b.test"])
    stored = OutboundEmail.objects.get(pk=email.pk)
    assert "abc-SECRET-123" not in stored.body_encrypted
    assert crypto.decrypt(stored.body_encrypted) == "key abc-SECRET-123"
    assert mail.outbox == []
    run_jobs()
    assert [m.body for m in mail.outbox] == ["key abc-SECRET-123"]
    stored.refresh_from_db()
    assert stored.status == "sent"
    assert stored.body_encrypted == ""  # no copy of the token kept once delivered


def test_rolled_back_transaction_stores_and_sends_nothing(db, run_jobs, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                tinko_mail.queue_email(subject="Hi", body="x", to=["a@b.test"])
                raise RuntimeError
    run_jobs()
    assert not OutboundEmail.objects.exists()
    assert mail.outbox == []


def test_delivering_the_same_email_twice_sends_it_once(db):
    email = tinko_mail.queue_email(subject="Hi", body="x", to=["a@b.test"])
    tinko_mail.deliver(email.pk)
    tinko_mail.deliver(email.pk)
    assert len(mail.outbox) == 1


def test_failed_attempt_is_recorded_without_the_body_and_retried(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there
    email = tinko_mail.queue_email(subject="Hi", body="token-XYZ", to=["a@b.test"])
    with pytest.raises(tinko_mail.DeliveryFailed):
        tinko_mail.deliver(email.pk)
    email.refresh_from_db()
    assert (email.status, email.attempts) == ("queued", 1)
    assert email.last_error and "token-XYZ" not in email.last_error


def test_email_is_given_up_after_the_last_attempt(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    email = tinko_mail.queue_email(subject="Hi", body="x", to=["a@b.test"])
    OutboundEmail.objects.filter(pk=email.pk).update(attempts=tinko_mail.MAX_ATTEMPTS - 1)
    assert tinko_mail.deliver(email.pk).status == "failed"


def test_email_the_broker_never_got_is_requeued_and_sent(db, run_jobs):
    # Stored, but the enqueue after commit never happened (Redis down at that moment).
    email = tinko_mail.queue_email(subject="Hi", body="x", to=["a@b.test"])
    assert tinko_mail.requeue_stuck_emails() == []  # too fresh to be called lost
    OutboundEmail.objects.filter(pk=email.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    assert tinko_mail.requeue_stuck_emails() == [email.pk]
    run_jobs()
    assert len(mail.outbox) == 1


def test_subject_with_line_breaks_becomes_one_line(db):
    email = tinko_mail.queue_email(subject="Join Acme\nBcc: evil@x.test", body="x", to=["a@b.test"])
    assert email.subject == "Join Acme Bcc: evil@x.test"
