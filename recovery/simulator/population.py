"""The synthetic population: failed payments, the issuer that answers re-charges, the customer who answers messages.

Every figure is a parameter of :class:`PopulationModel`; docs/simulator.md says
where each default comes from. A failure's whole future (pay cheques, issuer
moods, reactions to messages) is drawn once from ``(seed, index)``, so every
strategy meets the same customers ("common random numbers"): a difference
between two policies is the policies', not the dice's.

Nothing here knows Tinko's policies or planner: the issuer and the customer
answer what is done to them, whoever does it.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC = ZoneInfo("UTC")
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; failures spread over the following days

# What the payment provider reports for each kind of failure (Stripe fields; the real classifier reads them).
# kind: (category the population means, {field: value})
CODES: dict[str, dict[str, str]] = {
    "insufficient_funds": {"code": "card_declined", "decline_code": "insufficient_funds"},
    "insufficient_funds_mac": {"code": "card_declined", "decline_code": "insufficient_funds", "network_decline_code": "51"},
    "generic": {"code": "card_declined", "decline_code": "do_not_honor"},
    "processing": {"code": "processing_error", "decline_code": "processing_error"},
    "issuer_unavailable": {"code": "card_declined", "decline_code": "issuer_not_available"},
    "expired": {"code": "expired_card", "decline_code": "expired_card"},
    "invalid": {"code": "incorrect_number", "decline_code": "incorrect_number"},
    "authentication": {"code": "card_declined", "decline_code": "authentication_required"},
    "lost_stolen": {"code": "card_declined", "decline_code": "stolen_card"},
    "lost_stolen_visa": {"code": "card_declined", "decline_code": "lost_card", "network_decline_code": "41"},
    "fraud": {"code": "card_declined", "decline_code": "fraudulent"},
    "revoked": {"code": "card_declined", "decline_code": "revocation_of_authorization", "network_decline_code": "R1"},
    "mac_stop": {"code": "card_declined", "decline_code": "do_not_honor", "network_advice_code": "03"},
    "not_allowed": {"code": "card_declined", "decline_code": "transaction_not_allowed"},
}

# The population's own families (what really happened), for the per-category report and the response model.
FAMILY = {
    "insufficient_funds": "insufficient_funds", "insufficient_funds_mac": "insufficient_funds",
    "generic": "card_declined", "processing": "processing_error", "issuer_unavailable": "network_error",
    "expired": "expired_card", "invalid": "invalid_card", "authentication": "authentication_required",
    "lost_stolen": "lost_or_stolen", "lost_stolen_visa": "lost_or_stolen", "fraud": "fraud",
    "revoked": "revoked", "mac_stop": "do_not_retry", "not_allowed": "do_not_retry",
}

# Decline mixes (shares of failed recurring card payments). "subscriptions": insufficient funds 38 %,
# expired or cancelled card 24 %, generic bank decline 17 %, technical 21 % (Recurly/Stripe/Adyen 2024 figures
# as compiled in docs/simulator.md), with the hard declines split out of them. "hard_declines": a mix where
# expired, lost and stolen cards dominate (25–35 % expired, 10–15 % lost or stolen).
MIXES: dict[str, dict[str, float]] = {
    "subscriptions": {
        "insufficient_funds": 0.30, "insufficient_funds_mac": 0.06, "generic": 0.17, "processing": 0.08,
        "issuer_unavailable": 0.06, "expired": 0.17, "invalid": 0.04, "authentication": 0.04,
        "lost_stolen": 0.02, "lost_stolen_visa": 0.01, "fraud": 0.02, "revoked": 0.01, "mac_stop": 0.01,
        "not_allowed": 0.01,
    },
    "hard_declines": {
        "insufficient_funds": 0.18, "insufficient_funds_mac": 0.04, "generic": 0.15, "processing": 0.04,
        "issuer_unavailable": 0.03, "expired": 0.28, "invalid": 0.05, "authentication": 0.03,
        "lost_stolen": 0.07, "lost_stolen_visa": 0.04, "fraud": 0.04, "revoked": 0.02, "mac_stop": 0.02,
        "not_allowed": 0.01,
    },
}

# US private businesses' pay periods (BLS Current Employment Statistics, March 2013).
PAY_SCHEDULES = {"weekly": 0.324, "biweekly": 0.365, "semimonthly": 0.198, "monthly": 0.113}
TIMEZONES = {"America/New_York": 0.35, "America/Los_Angeles": 0.2, "Europe/London": 0.2, "Asia/Kolkata": 0.25}
BRANDS = {"visa": 0.55, "mastercard": 0.35, "amex": 0.10}
# The hour a customer reads mail and pays (local): evenings, mornings, lunch.
ACTIVE_HOURS = {19: 0.2, 20: 0.2, 21: 0.1, 7: 0.15, 8: 0.1, 12: 0.15, 13: 0.1}

MAX_DRAWS = 40  # retries and messages a strategy may make per failure (each gets its own random number)


@dataclass
class PopulationModel:
    """The issuer and customer model's parameters (docs/simulator.md explains and sources each)."""

    mix: str = "subscriptions"
    # Amounts: log-normal, median and spread, in minor units.
    amount_median: int = 3000
    amount_sigma: float = 0.8
    currency: str = "USD"
    # Insufficient funds: a pay cheque covers the debt with this probability, for this many days.
    paycheck_covers: float = 0.7
    funds_last_days_min: int = 2
    funds_last_days_max: int = 8
    # Generic declines: share that are really short funds, share blocked until the customer calls the bank.
    generic_disguised_funds: float = 0.3
    generic_blocked: float = 0.35
    generic_retry_success: float = 0.35  # first retry of a transient generic decline
    issuer_fatigue: float = 0.75  # each earlier retry multiplies the next one's chance by this
    velocity_penalty: float = 0.5  # a retry within 20 hours of the last attempt: chance times this
    technical_retry_success: float = 0.7
    technical_persistent: float = 0.1
    # Customers: chance that the first message makes them pay, by family; each further message times fatigue.
    response: dict = field(default_factory=lambda: {
        "insufficient_funds": 0.30, "card_declined": 0.25, "processing_error": 0.25, "network_error": 0.25,
        "expired_card": 0.30, "invalid_card": 0.25, "authentication_required": 0.35, "lost_or_stolen": 0.25,
        "do_not_retry": 0.15, "revoked": 0.03, "fraud": 0.0,
    })
    message_fatigue: float = 0.65
    active_hour_boost: float = 1.15  # a message that arrives within an hour of the customer's reading hour
    response_delay_hours: float = 6.0  # mean time from message to payment (exponential)
    has_phone: float = 0.6
    has_history: float = 0.4  # customers with earlier recoveries the merchant reported
    spread_days: int = 28  # failures spread over this many days from START

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PopulationModel:
        """A model from (partial) parameters; unknown names are an error, not ignored."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown population parameter(s): {', '.join(sorted(unknown))}")
        model = cls(**data)
        if model.mix not in MIXES:
            raise ValueError(f"unknown decline mix {model.mix!r}; choose one of {', '.join(MIXES)}")
        return model


@dataclass
class Failure:
    """One failed payment of the population and everything that will happen to it."""

    index: int
    kind: str
    family: str
    codes: dict
    amount: int
    currency: str
    brand: str
    failed_at: datetime
    tz: ZoneInfo
    email: bool
    phone: bool
    active_hour: int
    schedule: str
    funded: list[tuple[datetime, datetime]]  # when the money is there (insufficient funds)
    blocked: bool  # never charged again successfully: only the customer can fix it
    retry_draws: list[float]
    message_draws: list[float]
    delay_draws: list[float]
    paid_history: list[datetime]  # earlier recoveries the merchant reported (for payday inference)

    def _windows(self) -> list[tuple[float, float]]:
        # Timestamps, sorted: comparing aware datetimes of different zones costs more than the rest of a run.
        cached = self.__dict__.get("_funded_ts")
        if cached is None or cached[0] is not self.funded:
            cached = (self.funded, sorted((s.timestamp(), e.timestamp()) for s, e in self.funded))
            self.__dict__["_funded_ts"] = cached
        return cached[1]

    def has_funds(self, when: datetime) -> bool:
        windows = self._windows()
        ts = when.timestamp()
        i = bisect.bisect_right(windows, (ts, float("inf"))) - 1
        return any(start <= ts < end for start, end in windows[max(0, i - 2):i + 1])

    def next_funds(self, when: datetime) -> datetime | None:
        if self.has_funds(when):
            return when
        later = [start for start, _ in self.funded if start > when]
        return min(later) if later else None


def _pick(rng: random.Random, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def paydays(schedule: str, phase: int, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The customer's paydays (06:00 local, when the money lands) between ``start`` and ``end``."""
    out = []
    day = start.astimezone(tz).date() - timedelta(days=40)
    last = end.astimezone(tz).date()
    while day <= last:
        hit = False
        if schedule == "weekly":
            hit = day.weekday() == 4
        elif schedule == "biweekly":
            hit = day.weekday() == 4 and (day.toordinal() // 7) % 2 == phase
        elif schedule == "semimonthly":
            month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            hit = day.day == 15 or (day.day == 1 if phase == 0 else day == month_end)
        else:  # monthly: the 1st, the 25th or the month's last day
            month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            hit = {0: day.day == 1, 1: day.day == 25}.get(phase, day == month_end)
        if hit:
            out.append(datetime.combine(day, time(6), tzinfo=tz))
        day += timedelta(days=1)
    return out


def generate(model: PopulationModel, *, size: int, seed: int) -> list[Failure]:
    """``size`` failures, the same for the same model and seed."""
    return [_one(model, seed, i) for i in range(size)]


def _one(model: PopulationModel, seed: int, index: int) -> Failure:
    rng = random.Random(f"{seed}:{index}")
    kind = _pick(rng, MIXES[model.mix])
    family = FAMILY[kind]
    brand = _pick(rng, BRANDS)
    if kind in ("insufficient_funds_mac", "mac_stop"):
        brand = "mastercard"
    elif kind in ("lost_stolen_visa", "revoked"):
        brand = "visa"
    codes = dict(CODES[kind])
    if kind == "insufficient_funds_mac":
        # Mastercard's Merchant Advice Codes 24–27 on insufficient funds: "retry after 1 h / 24 h / 2 days / 4 days".
        codes = {**codes, "network_advice_code": rng.choice(["24", "25", "26", "27"]), "network_decline_code": ""}
    tz = ZoneInfo(_pick(rng, TIMEZONES))
    schedule = _pick(rng, PAY_SCHEDULES)
    phase = rng.randrange(3)
    if schedule == "biweekly":
        phase %= 2
    amount = max(100, int(round(model.amount_median * math.exp(rng.gauss(0, model.amount_sigma)), -2)))
    # Earlier recoveries (for payday inference) go back about four months.
    horizon_start = START - timedelta(days=130)
    horizon_end = START + timedelta(days=model.spread_days + 70)
    funded = []
    funds_like = family == "insufficient_funds" or (kind == "generic" and rng.random() < model.generic_disguised_funds)
    for pay in paydays(schedule, phase, tz, horizon_start, horizon_end):
        if rng.random() < model.paycheck_covers:
            funded.append((pay, pay + timedelta(days=rng.randint(model.funds_last_days_min, model.funds_last_days_max))))
    # The payment failed at the merchant's billing run (a random day and hour); a short-funds failure happened
    # while the money was not there.
    failed_at = START + timedelta(seconds=rng.randrange(model.spread_days * 86400))
    if funds_like:
        for _ in range(200):
            if not any(s <= failed_at < e for s, e in funded):
                break
            failed_at = START + timedelta(seconds=rng.randrange(model.spread_days * 86400))
    if kind == "generic" and funds_like:
        blocked = False
    elif kind == "generic":
        blocked = rng.random() < model.generic_blocked
    elif family in ("processing_error", "network_error"):
        blocked = rng.random() < model.technical_persistent
    else:
        blocked = family not in ("insufficient_funds",)
    active_hour = _pick(rng, ACTIVE_HOURS)
    history = []
    if rng.random() < model.has_history:
        # Earlier recoveries: the customer paid soon after money arrived, around their reading hour.
        starts = [s for s, _ in funded if s < failed_at - timedelta(days=20)]
        for start in rng.sample(starts, min(len(starts), rng.randint(1, 4))):
            day = start + timedelta(days=rng.choice([0, 0, 0, 1, 2]))
            history.append(day.replace(hour=(active_hour + rng.choice([-1, 0, 0, 1])) % 24, minute=rng.randrange(60)))
    return Failure(
        index=index, kind=kind, family=family, codes=codes, amount=amount, currency=model.currency, brand=brand,
        failed_at=failed_at, tz=tz, email=rng.random() < 0.97, phone=rng.random() < model.has_phone,
        active_hour=active_hour, schedule=schedule,
        funded=funded if funds_like else [], blocked=blocked,
        retry_draws=[rng.random() for _ in range(MAX_DRAWS)],
        message_draws=[rng.random() for _ in range(MAX_DRAWS)],
        delay_draws=[rng.expovariate(1 / model.response_delay_hours) for _ in range(MAX_DRAWS)],
        paid_history=sorted(history),
    )


# --- How the issuer answers a re-charge ---------------------------------------------------------------------


def charge_succeeds(model: PopulationModel, failure: Failure, *, when: datetime, retry: int, last_attempt: datetime) -> bool:
    """Whether the ``retry``-th automatic re-charge (0-based) at ``when`` goes through."""
    if failure.family in ("insufficient_funds",) or failure.funded:
        return failure.has_funds(when)
    if failure.blocked:
        return False
    if failure.family == "card_declined":
        chance = model.generic_retry_success * model.issuer_fatigue**retry
        if when - last_attempt < timedelta(hours=20):
            chance *= model.velocity_penalty
    elif failure.family in ("processing_error", "network_error"):
        chance = model.technical_retry_success * 0.8**retry
        if when - last_attempt < timedelta(minutes=30):
            chance *= model.velocity_penalty
    else:
        return False
    return failure.retry_draws[min(retry, MAX_DRAWS - 1)] < chance


# --- How the customer answers a message ---------------------------------------------------------------------


def pays_after_message(model: PopulationModel, failure: Failure, *, when: datetime, nth: int) -> datetime | None:
    """When the customer pays through the link of their ``nth`` message (0-based) sent at ``when``, or None."""
    chance = model.response.get(failure.family, 0.0) * model.message_fatigue**nth
    local_hour = when.astimezone(failure.tz).hour
    if min(abs(local_hour - failure.active_hour), 24 - abs(local_hour - failure.active_hour)) <= 1:
        chance *= model.active_hour_boost
    draw = min(nth, MAX_DRAWS - 1)
    if failure.message_draws[draw] >= chance:
        return None
    paid = when + timedelta(hours=failure.delay_draws[draw])
    if failure.funded:  # short of money: pays when it arrives, if that is within three days
        arrives = failure.next_funds(paid)
        if arrives is None or arrives - paid > timedelta(days=3):
            return None
        paid = max(paid, arrives)
    return paid


# --- The organization's own failures ------------------------------------------------------------------------

# What the population model needs to know about a real failure it cannot ask: the classifier's category decides
# how the issuer and the customer behave (lost and stolen cards apart from suspected fraud).
CATEGORY_FAMILY = {
    "insufficient_funds": "insufficient_funds", "card_declined": "card_declined", "processing_error": "processing_error",
    "network_error": "network_error", "expired_card": "expired_card", "invalid_card": "invalid_card",
    "authentication_required": "authentication_required", "do_not_retry": "do_not_retry", "unknown": "do_not_retry",
}
FRAUD_CODES = {"fraudulent", "merchant_blacklist", "security_violation", "59", "63", "83"}
KIND_OF_FAMILY = {
    "insufficient_funds": "insufficient_funds", "card_declined": "generic", "processing_error": "processing",
    "network_error": "issuer_unavailable", "expired_card": "expired", "invalid_card": "invalid",
    "authentication_required": "authentication", "lost_or_stolen": "lost_stolen", "fraud": "fraud",
    "do_not_retry": "not_allowed", "revoked": "revoked",
}


def family_of(category: str, codes: dict) -> str:
    if category == "fraud_or_stolen":
        signals = {codes.get("decline_code", ""), codes.get("network_decline_code", "")}
        return "fraud" if signals & FRAUD_CODES else "lost_or_stolen"
    if category == "do_not_retry" and (
        codes.get("network_decline_code") in ("R0", "R1", "R3") or codes.get("network_advice_code") == "21"
    ):
        return "revoked"
    return CATEGORY_FAMILY.get(category, "do_not_retry")


def from_records(model: PopulationModel, records: list[dict], *, seed: int) -> list[Failure]:
    """Failures from real records (the organization's recent failures), the unknowns drawn from the model.

    Each record has ``category``, ``codes``, ``amount``, ``currency``, ``brand``,
    ``failed_at``, ``timezone`` (or ""), ``email``, ``phone`` (booleans) and
    ``paid_history`` (the customer's earlier recoveries). What a record cannot
    say (when the money arrives, how the customer answers) is drawn as for a
    synthetic failure of the same family, moved to the record's time.
    """
    out = []
    for index, record in enumerate(records):
        family = family_of(record["category"], record["codes"])
        drawn = None
        for attempt in range(50):
            candidate = _one(model, seed, index * 50 + attempt)
            if candidate.family == family:
                drawn = candidate
                break
        if drawn is None:  # a family the mix (almost) never draws: only the customer can fix it
            drawn = _one(model, seed, index)
            drawn.family, drawn.kind, drawn.blocked, drawn.funded = family, KIND_OF_FAMILY[family], True, []
        shift = record["failed_at"] - drawn.failed_at
        tz = ZoneInfo(record["timezone"]) if record.get("timezone") else drawn.tz
        out.append(Failure(
            index=index, kind=drawn.kind, family=family, codes=dict(record["codes"]), amount=record["amount"],
            currency=record["currency"], brand=record["brand"] or drawn.brand, failed_at=record["failed_at"], tz=tz,
            email=record["email"], phone=record["phone"], active_hour=drawn.active_hour, schedule=drawn.schedule,
            funded=[(s + shift, e + shift) for s, e in drawn.funded], blocked=drawn.blocked,
            retry_draws=drawn.retry_draws, message_draws=drawn.message_draws, delay_draws=drawn.delay_draws,
            paid_history=list(record.get("paid_history") or []),
        ))
    return out
