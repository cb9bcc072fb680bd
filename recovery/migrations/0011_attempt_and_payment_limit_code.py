from django.db import migrations, models

LIMITS = [
    ("visa_15_30d", "At most 15 automatic re-charges per card and amount in 30 days (Visa rule)"),
    ("mastercard_10_24h", "At most 10 automatic attempts per card in 24 hours (Mastercard)"),
]


class Migration(migrations.Migration):

    dependencies = [
        ("recovery", "0010_content_types_and_audit_follow_customer_and_payment"),
    ]

    operations = [
        migrations.AddField(
            model_name="recoveryattempt",
            name="limit_code",
            field=models.CharField(blank=True, choices=LIMITS, max_length=20),
        ),
        migrations.AddField(
            model_name="payment",
            name="limit_code",
            field=models.CharField(blank=True, choices=LIMITS, max_length=20),
        ),
    ]
