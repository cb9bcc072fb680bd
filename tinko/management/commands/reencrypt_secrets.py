"""Re-encrypt every secret stored at rest with the newest TINKO_ENCRYPTION_KEYS key.

Run after putting a new key first in TINKO_ENCRYPTION_KEYS; once it reports
done, the old keys can be removed. Safe to run again (already-current values
are rewritten with the same key).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tinko import crypto

# (model label, JSON field, keys inside it that hold encrypted values)
ENCRYPTED_JSON_FIELDS = [
    ("mfa.Authenticator", "data", ("secret", "seed")),
    ("payments.ProviderAccount", "credentials", ("secret_key", "key_secret", "webhook_secret")),
]

# (model label, text fields that each hold one encrypted value, or "" when empty)
ENCRYPTED_TEXT_FIELDS = [
    ("tinko.OutboundEmail", ("body_encrypted", "html_encrypted")),
    ("notifications.Notification", ("text_encrypted", "html_encrypted", "pay_url_encrypted")),
    ("notifications.WebhookEndpoint", ("secret_encrypted",)),
    ("recovery.RecoveryLink", ("token_encrypted",)),
]


class Command(BaseCommand):
    help = "Re-encrypt secrets at rest with the newest key in TINKO_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        from django.apps import apps

        for label, field, keys in ENCRYPTED_JSON_FIELDS:
            model = apps.get_model(label)
            changed = 0
            with transaction.atomic():
                for row in model.objects.select_for_update().only("pk", field).iterator(chunk_size=500):
                    data = dict(getattr(row, field) or {})
                    touched = False
                    for key in keys:
                        if isinstance(data.get(key), str):
                            try:
                                data[key] = crypto.reencrypt(data[key])
                            except crypto.InvalidToken:
                                raise CommandError(
                                    f"{label} {row.pk}: {key} opens with none of TINKO_ENCRYPTION_KEYS; "
                                    "was a key removed before re-encrypting? Nothing was changed."
                                ) from None
                            touched = True
                    if touched:
                        model.objects.filter(pk=row.pk).update(**{field: data})
                        changed += 1
            self.stdout.write(f"{label}: {changed} re-encrypted")
        for label, fields in ENCRYPTED_TEXT_FIELDS:
            model = apps.get_model(label)
            changed = 0
            with transaction.atomic():
                for row in model.objects.select_for_update().only("pk", *fields).iterator(chunk_size=500):
                    values = {}
                    for field in fields:
                        if getattr(row, field):
                            try:
                                values[field] = crypto.reencrypt(getattr(row, field))
                            except crypto.InvalidToken:
                                raise CommandError(
                                    f"{label} {row.pk}: {field} opens with none of TINKO_ENCRYPTION_KEYS; "
                                    "was a key removed before re-encrypting? Nothing was changed."
                                ) from None
                    if values:
                        model.objects.filter(pk=row.pk).update(**values)
                        changed += 1
            self.stdout.write(f"{label}: {changed} re-encrypted")
