"""A retry policy's steps: per decline category, the ordered re-charges and messages Tinko takes.

The shape stored in ``RetryPolicy.steps`` and spoken by the API, the console
and the admin::

    {
        "insufficient_funds": [
            {"action": "recharge", "after_seconds": 86400},
            {"action": "message", "after_seconds": 0, "channel": ""},
            ...
        ],
        "lost_or_stolen": [{"action": "message", "after_seconds": 0, "channel": "email"}],
        ...
    }

- Keys are the decline categories (``recovery.models.Category`` values) except
  ``fraud_or_stolen``, plus ``lost_or_stolen``: a ``fraud_or_stolen`` decline
  whose code says the card was lost, stolen or must be picked up (the card
  networks forbid re-charging it, not asking for another card). Nothing is ever
  done for fraud, whatever a policy says. A missing key or ``[]``: no action.
- ``action``: ``recharge`` (an automatic off-session re-charge; only for the
  categories a re-charge can fix, :data:`RECHARGE_KEYS`) or ``message`` (a
  message with the payment's pay link).
- ``after_seconds``: the wait after the previous step (after the failure for the
  first step; after the latest decline when that is later). 0 means at once.
- ``channel`` (messages only): ``""`` takes the policy's channels in turn;
  ``email``/``sms``/``whatsapp`` asks for that one, and falls back to the
  policy's order when it cannot reach the customer.

This module holds the shape and its checks only (no models, no queries): the
planner (recovery/planner.py) reads it, models use its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

RECHARGE = "recharge"
MESSAGE = "message"
ACTIONS = (RECHARGE, MESSAGE)
LOST_OR_STOLEN = "lost_or_stolen"
FRAUD = "fraud_or_stolen"

# Every key a policy may hold, in the order people read them.
STEP_KEYS = (
    "insufficient_funds", "card_declined", "processing_error", "network_error", "authentication_required",
    "expired_card", "invalid_card", LOST_OR_STOLEN, "do_not_retry", "unknown",
)
# Categories a re-charge may fix (the classifier's auto_retry categories).
RECHARGE_KEYS = frozenset({"insufficient_funds", "card_declined", "processing_error", "network_error"})
MESSAGE_CHANNELS = ("email", "sms", "whatsapp")

MAX_STEPS = 20
MAX_RECHARGES = 15  # Visa's cap per card and amount in 30 days; more could never run
MIN_RECHARGE_WAIT = 60
MAX_WAIT = 30 * 86400

HOUR, DAY = 3600, 86400


@dataclass(frozen=True)
class Step:
    action: str
    after_seconds: int
    channel: str = ""

    def as_dict(self) -> dict:
        data = {"action": self.action, "after_seconds": self.after_seconds}
        if self.action == MESSAGE:
            data["channel"] = self.channel
        return data


def _r(after):
    return {"action": RECHARGE, "after_seconds": after}


def _m(after, channel=""):
    return {"action": MESSAGE, "after_seconds": after, "channel": channel}


# Tinko's defaults, measured with the policy simulator (docs/simulator.md, "Measured
# figures": five seeds and a second decline mix, against the fixed schedules).
# The recovery window is 28 days (RetryPolicy.recovery_window_days): four weeks give
# every weekly and fortnightly earner two paydays and a monthly earner one.
# - Insufficient funds: seven re-charges, three or four days apart (days 1, 4, 8, 12,
#   16, 20, 24). Money that arrives on a payday usually stays several days, so this
#   rhythm meets most paydays whatever the customer's pay schedule; with payday
#   alignment on (the default) customers whose own history shows their payday are
#   re-charged on it instead. A message after the 1st, 3rd and 5th re-charge. Every
#   three days instead recovers a little more (about half a point in the simulator)
#   for 5 % more charges, and leaves too little room under 3 charges per recovered
#   payment when fewer pay cheques cover the debt.
# - Generic declines: a message at once (the customer often has to call the bank or
#   use another card), re-charges spaced one to four days apart (issuers decline
#   rapid retries, and each further retry is less likely to pass), four messages.
# - Processing errors and issuer outages: re-charges within hours, then daily and
#   slower, with two messages in between.
# - Expired, invalid and authentication-required cards: five messages over two weeks
#   (days 0, 2, 5, 9, 14); lost, stolen and network-stopped cards: "use another
#   card" messages, never a re-charge. Unknown declines wait for a person.
DEFAULT_STEPS = {
    "insufficient_funds": [
        _r(DAY), _m(0), _r(3 * DAY), _r(4 * DAY), _m(0), _r(4 * DAY), _r(4 * DAY), _m(0), _r(4 * DAY), _r(4 * DAY),
    ],
    "card_declined": [
        _m(0), _r(DAY), _r(2 * DAY), _r(3 * DAY), _m(0), _r(3 * DAY), _r(3 * DAY), _m(0), _r(4 * DAY), _r(4 * DAY), _m(0),
    ],
    "processing_error": [
        _r(HOUR), _r(3 * HOUR), _m(0), _r(DAY), _r(2 * DAY), _m(DAY), _r(3 * DAY), _r(4 * DAY), _m(2 * DAY),
    ],
    "network_error": [
        _r(HOUR // 2), _r(2 * HOUR), _m(0), _r(DAY), _r(2 * DAY), _m(DAY), _r(3 * DAY), _r(4 * DAY), _m(2 * DAY),
    ],
    "authentication_required": [_m(0), _m(2 * DAY), _m(3 * DAY), _m(4 * DAY), _m(5 * DAY)],
    "expired_card": [_m(0), _m(2 * DAY), _m(3 * DAY), _m(4 * DAY), _m(5 * DAY)],
    "invalid_card": [_m(0), _m(2 * DAY), _m(3 * DAY), _m(4 * DAY), _m(5 * DAY)],
    LOST_OR_STOLEN: [_m(0), _m(2 * DAY), _m(3 * DAY), _m(4 * DAY)],
    "do_not_retry": [_m(0), _m(3 * DAY), _m(4 * DAY)],
    "unknown": [],
}


def default_steps() -> dict:
    return {key: [dict(step) for step in steps] for key, steps in DEFAULT_STEPS.items()}


def steps_for(policy, key: str) -> tuple[Step, ...]:
    """The policy's steps for ``key`` as :class:`Step` objects (assumes a validated policy).

    Kept on the policy object while its list for ``key`` is the same object:
    planning a batch asks this of one policy a thousand times.
    """
    if key == FRAUD:
        return ()
    raw = (getattr(policy, "steps", None) or {}).get(key) or []
    memo = getattr(policy, "__dict__", {}).setdefault("_steps_for", {})
    kept = memo.get(key)
    if kept is not None and kept[0] is raw:
        return kept[1]
    steps = tuple(Step(s["action"], int(s.get("after_seconds", 0)), s.get("channel", "") or "") for s in raw)
    memo[key] = (raw, steps)
    return steps


def validate_steps(value) -> dict[str, list[str]]:
    """Problems per key (empty when ``value`` is a valid steps object). Plain English, for the API and console."""
    if not isinstance(value, dict):
        return {"": ["Must be an object keyed by decline category."]}
    errors: dict[str, list[str]] = {}
    for key, steps in value.items():
        problems = []
        if key == FRAUD:
            problems.append("Fraud declines never get a re-charge or a message; leave fraud_or_stolen out.")
        elif key not in STEP_KEYS:
            problems.append(f"Unknown decline category {key!r}; use one of {', '.join(STEP_KEYS)}.")
        elif not isinstance(steps, list):
            problems.append("Must be a list of steps.")
        else:
            problems.extend(_step_problems(key, steps))
        if problems:
            errors[str(key)] = problems
    return errors


def _step_problems(key: str, steps: list) -> list[str]:
    problems = []
    if len(steps) > MAX_STEPS:
        problems.append(f"At most {MAX_STEPS} steps.")
    recharges = 0
    for n, step in enumerate(steps, start=1):
        if not isinstance(step, dict):
            problems.append(f"Step {n}: must be an object.")
            continue
        unknown = set(step) - {"action", "after_seconds", "channel"}
        if unknown:
            problems.append(f"Step {n}: unknown field {sorted(unknown)[0]!r}.")
        action, after = step.get("action"), step.get("after_seconds", 0)
        if action not in ACTIONS:
            problems.append(f"Step {n}: action must be 'recharge' or 'message'.")
            continue
        if isinstance(after, bool) or not isinstance(after, int):
            problems.append(f"Step {n}: after_seconds must be an integer.")
        elif not (MIN_RECHARGE_WAIT if action == RECHARGE else 0) <= after <= MAX_WAIT:
            low = MIN_RECHARGE_WAIT if action == RECHARGE else 0
            problems.append(f"Step {n}: after_seconds must be between {low} and {MAX_WAIT}.")
        if action == RECHARGE:
            recharges += 1
            if key not in RECHARGE_KEYS:
                problems.append(f"Step {n}: {key} declines are never re-charged; only messages are allowed.")
            if "channel" in step and step["channel"] not in ("", "psp"):
                problems.append(f"Step {n}: a re-charge has no message channel.")
        elif step.get("channel", "") not in ("", *MESSAGE_CHANNELS):
            problems.append(f"Step {n}: channel must be empty (the policy's channels in turn) or one of "
                            f"{', '.join(MESSAGE_CHANNELS)}.")
    if recharges > MAX_RECHARGES:
        problems.append(f"At most {MAX_RECHARGES} re-charges (the card networks' cap in 30 days).")
    return problems


def normalized(value: dict) -> dict:
    """A validated steps object in its stored form: keys in order, every message with a channel field."""
    return {
        key: [Step(s["action"], int(s.get("after_seconds", 0)), s.get("channel", "") or "").as_dict() for s in value[key]]
        for key in STEP_KEYS
        if key in value
    }


def from_legacy(*, max_retries, initial_delay_seconds, backoff_multiplier, max_delay_seconds, max_notifications,
                notification_interval_seconds, notify_on_hard_decline, category_overrides) -> dict:
    """The steps that do what a policy of the old shape ("N retries with backoff, then M messages") did.

    Retryable categories: the retries with their backoff, then the messages
    ``notification_interval_seconds`` apart; customer-action categories: the
    messages; ``do_not_retry`` (and, now allowed, lost or stolen cards): one
    message when ``notify_on_hard_decline``; unknown and fraud: nothing.
    Kept here (plain values in, plain dict out) so that the data migration and
    its test share it.
    """
    def messages(count):
        return [_m(0 if i == 0 else int(notification_interval_seconds)) for i in range(count)]

    steps = {}
    for key in STEP_KEYS:
        if key in RECHARGE_KEYS:
            override = (category_overrides or {}).get(key, {})
            retries = int(override.get("max_retries", max_retries))
            initial = int(override.get("initial_delay_seconds", initial_delay_seconds))
            multiplier = float(override.get("backoff_multiplier", backoff_multiplier))
            longest = int(override.get("max_delay_seconds", max_delay_seconds))
            waits = [max(MIN_RECHARGE_WAIT, min(int(initial * multiplier**n), longest, MAX_WAIT))
                     for n in range(min(retries, MAX_RECHARGES))]
            steps[key] = [_r(w) for w in waits] + messages(int(max_notifications))
        elif key in ("authentication_required", "expired_card", "invalid_card"):
            steps[key] = messages(int(max_notifications))
        elif key in ("do_not_retry", LOST_OR_STOLEN):
            steps[key] = messages(1) if notify_on_hard_decline else []
        else:
            steps[key] = []
    return steps
