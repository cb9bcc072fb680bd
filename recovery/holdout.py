"""Incrementality: which new failed payments are held out of recovery.

A retry policy may hold out ``holdout_percent`` of the payments it starts
recovering. The draw happens once, when a payment is first reported
(recovery.ingestion), with the operating system's randomness, and is recorded
on the payment (``Payment.holdout_group``); the planner then plans nothing for
the held-out ones (recovery.planner.plan_next). The dashboard compares the two
groups' recovery rates (analytics.selectors.holdout). The draw is the engine's
decision, so it lives here; analytics only reads its outcome.
"""

from __future__ import annotations

import random

from payments.models import HoldoutGroup

_random = random.SystemRandom()


def draw_holdout_group(policy, *, rng=_random) -> str:
    """``holdout`` with the policy's probability, else ``treatment``; blank when the policy runs no experiment."""
    percent = getattr(policy, "holdout_percent", 0) or 0
    if percent <= 0:
        return ""
    return HoldoutGroup.HOLDOUT if rng.random() * 100 < percent else HoldoutGroup.TREATMENT
