"""New retry policies: insufficient-funds re-charges aligned to the customer's learnt payday, a 28-day window (existing policies keep theirs)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('recovery', '0007_recovery_link_token_for_reuse'),
    ]

    operations = [
        migrations.AlterField(
            model_name='retrypolicy',
            name='payday_alignment',
            field=models.BooleanField(default=True),
        ),
        migrations.AlterField(
            model_name='retrypolicy',
            name='recovery_window_days',
            field=models.PositiveSmallIntegerField(default=28, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(60)]),
        ),
    ]
