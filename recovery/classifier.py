"""The decline classifier: why a payment failed, and what recovery may do about it.

``classify()`` turns one PSP failure report (Stripe ``code`` / ``decline_code`` /
``advice_code`` / ``network_*`` fields, Razorpay ``error.code`` / ``error.reason``,
or just a message) into a :class:`Classification`: a category, what to do
(``auto_retry`` | ``customer_action`` | ``stop``), the earliest automatic retry,
whether a card network forbids any reattempt, and a plain-language reason that
names the rule that decided.

Precedence (the reference's "Suggested precedence", shared/reference/decline-codes.md):

1. Network hard stops win: a Mastercard Merchant Advice Code (``network_advice_code``,
   read when the brand is Mastercard or unknown) or a Visa raw response code
   (``network_decline_code``, read when the brand is Visa or unknown) whose rule has
   ``network_stop`` (MAC 03/21, Visa category 1) is final: never retried.
2. ``decline_code`` (Stripe decline codes incl. local-payment-method codes;
   Razorpay ``error.reason``).
3. Other card-network signals, only when no decline code matched: MAC 01/02/04, listed
   non-stop Visa codes. MAC 24-30 ("retry after ...") always set the earliest retry,
   and make the category ``insufficient_funds`` unless a non-retryable category
   was already decided. Our choice: a decline code beats a network code except for
   hard stops (the reference's order); a listed network code beats the error ``code``
   because Stripe's ``code`` is usually the generic ``card_declined``.
4. The error ``code``, only when no ``decline_code`` was given (Stripe error codes;
   for Razorpay only ``SERVER_ERROR`` has a rule). A rule's ``min_delay_seconds`` on
   the code (``card_decline_rate_limit_exceeded``: 24 h) applies even when the decline
   code decided the category. Then, for a Visa card whose raw code is in no table:
   Visa category 4, a generic ``card_declined``.
5. Stripe ``advice_code`` modifiers, built into this module (not database rules):
   ``do_not_try_again``, ``confirm_card_data``, ``try_again_later``; see
   :func:`_apply_advice`.
6. If nothing matched so far, message patterns (case-insensitive regular
   expressions, ascending priority). A code whose rule says ``unknown`` is final and
   does not fall back to the message.
7. Nothing matched: ``unknown``, ``stop``, "needs manual review".

Rules live in :class:`recovery.models.ClassificationRule`: defaults (no organization,
shipped by migration 0002, editable by staff) and per-organization overrides. For a
lookup, an active rule of the organization beats the default with the same provider,
field and value; a rule for the exact provider beats one for any provider (``""``)
within the same scope, and the organization's rules are tried before the defaults.
An organization's message patterns are tried before default patterns of equal
priority. Inactive rules are ignored.

Speed: ``classify()`` makes no database query in the steady state. Each process keeps
the compiled rules (defaults once, each organization's own rules once, one query each)
and re-checks a version token in Django's cache (``VERSION_KEY``) at most every
``VERSION_CHECK_SECONDS``. Saving or deleting a rule bumps the token once the
transaction commits (see :func:`connect_signals`), so every process reloads; the
saving process sees its own change at once. Bulk updates and raw SQL skip signals:
call :func:`invalidate_rules` after them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.signals import post_delete, post_save

from recovery.models import Action, Category, ClassificationRule, RuleField
from tinko.formatting import english

log = logging.getLogger(__name__)

VERSION_KEY = "classifier:version"
# How stale another process's edit may be here. The editing process itself reloads at once.
VERSION_CHECK_SECONDS = 1.0

# The action each category takes unless its rule says otherwise. Plain strings, not
# enum members: results are compared, stored and serialised.
CATEGORY_ACTIONS: dict[str, str] = {
    category.value: action.value
    for category, action in [
        (Category.INSUFFICIENT_FUNDS, Action.AUTO_RETRY),
        (Category.CARD_DECLINED, Action.AUTO_RETRY),
        (Category.PROCESSING_ERROR, Action.AUTO_RETRY),
        (Category.NETWORK_ERROR, Action.AUTO_RETRY),
        (Category.AUTHENTICATION_REQUIRED, Action.CUSTOMER_ACTION),
        (Category.EXPIRED_CARD, Action.CUSTOMER_ACTION),
        (Category.INVALID_CARD, Action.CUSTOMER_ACTION),
        (Category.FRAUD_OR_STOLEN, Action.STOP),
        (Category.DO_NOT_RETRY, Action.STOP),
        (Category.UNKNOWN, Action.STOP),
    ]
}
RETRYABLE_CATEGORIES = frozenset(c for c, a in CATEGORY_ACTIONS.items() if a == Action.AUTO_RETRY)

# Stripe advice_code values (charge outcome); built in, see _apply_advice.
ADVICE_DO_NOT_TRY_AGAIN = "do_not_try_again"
ADVICE_CONFIRM_CARD_DATA = "confirm_card_data"
ADVICE_TRY_AGAIN_LATER = "try_again_later"

PROVIDERS = ("stripe", "razorpay", "other")
# Plain strings: enum member access costs more than the dict lookups it guards.
DECLINE_CODE = RuleField.DECLINE_CODE.value
CODE = RuleField.CODE.value
VISA_CODE = RuleField.VISA_CODE.value
MASTERCARD_ADVICE = RuleField.MASTERCARD_ADVICE.value
MESSAGE = RuleField.MESSAGE.value
AUTO_RETRY = Action.AUTO_RETRY.value
STOP = Action.STOP.value
VISA = "visa"
MASTERCARD = "mastercard"


@dataclass(frozen=True)
class Classification:
    category: str  # recovery.models.Category value
    action: str  # recovery.models.Action value: auto_retry | customer_action | stop
    min_delay: timedelta  # earliest automatic retry after this failure; 0 if none or not retryable
    network_stop: bool  # a card network forbids any reattempt (Visa category 1, MAC 03/21)
    reason: str  # plain language, names the rule that matched
    rule_id: int | None  # the ClassificationRule that decided (or was modified by an advice code); None otherwise

    @property
    def retryable(self) -> bool:
        return self.action == Action.AUTO_RETRY

    def event_fields(self) -> dict:
        """The FailureEvent columns that store this classification."""
        return {
            "category": self.category, "action": self.action, "min_delay_seconds": int(self.min_delay.total_seconds()),
            "network_stop": self.network_stop, "reason": self.reason, "rule_id": self.rule_id,
        }


# --- Compiled rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    id: int
    organization_id: int | None
    provider: str
    field: str
    value: str
    priority: int
    category: str
    action: str
    min_delay_seconds: int
    network_stop: bool
    description: str
    pattern: re.Pattern | None


class _RuleSet:
    """One organization's view of the rules: its own rules over the defaults. Read-only once built."""

    __slots__ = ("own", "defaults", "messages")

    def __init__(self, *, own: dict, defaults: dict, messages: list[_Rule]):
        self.own = own
        self.defaults = defaults
        self.messages = messages

    def lookup(self, provider: str, field: str, value: str) -> _Rule | None:
        if not value:
            return None
        for table in (self.own, self.defaults):
            if table:
                rule = table.get((provider, field, value)) or table.get(("", field, value))
                if rule is not None:
                    return rule
        return None

    def default_stop(self, provider: str, field: str, value: str) -> _Rule | None:
        """The default rule for a network code if it is a hard stop (an organization cannot waive those)."""
        if not value or not self.defaults:
            return None
        rule = self.defaults.get((provider, field, value)) or self.defaults.get(("", field, value))
        return rule if rule is not None and rule.network_stop else None

    def match_message(self, provider: str, message: str) -> _Rule | None:
        for rule in self.messages:
            if rule.provider in ("", provider) and rule.pattern.search(message):
                return rule
        return None


def normalize_value(field: str, value: str) -> str:
    """The form a rule value and an incoming code are compared in.

    Decline/error codes compare case-insensitively (Razorpay's error.code is upper
    case, its reasons lower case). Network codes are upper case and at least two
    characters ("5" and "05" are the same Visa code).
    """
    value = (value or "").strip()
    if field in (VISA_CODE, MASTERCARD_ADVICE):
        value = value.upper()
        return value.zfill(2) if value.isdigit() else value
    if field == MESSAGE:
        return value
    return value.lower()


def _compile(row: ClassificationRule) -> _Rule | None:
    pattern = None
    value = normalize_value(row.field, row.value)
    if row.field == MESSAGE:
        try:
            pattern = re.compile(row.value, re.IGNORECASE)
        except re.error as exc:
            # The admin refuses bad patterns; a row written some other way must not break ingestion.
            log.warning("classifier: skipping rule #%s, invalid pattern: %s", row.pk, exc)
            return None
    return _Rule(
        id=row.pk,
        organization_id=row.organization_id,
        provider=_normalize_provider(row.provider) if row.provider else "",
        field=row.field,
        value=value,
        priority=row.priority,
        category=row.category,
        action=row.action,
        min_delay_seconds=row.min_delay_seconds,
        network_stop=row.network_stop,
        description=row.description.strip().rstrip("."),
        pattern=pattern,
    )


def _compiled(queryset) -> tuple[dict, list[_Rule]]:
    codes, messages = {}, []
    for row in queryset:
        rule = _compile(row)
        if rule is None:
            continue
        if rule.field == MESSAGE:
            messages.append(rule)
        else:
            codes[(rule.provider, rule.field, rule.value)] = rule
    return codes, messages


def _message_order(rule: _Rule):
    # Equal priority: the organization's own pattern first, then the older rule.
    return (rule.priority, rule.organization_id is None, rule.id)


def _load_defaults() -> _RuleSet:
    codes, messages = _compiled(ClassificationRule.objects.filter(organization__isnull=True, is_active=True))
    return _RuleSet(own={}, defaults=codes, messages=sorted(messages, key=_message_order))


def _load_org(org_id: int, defaults: _RuleSet) -> _RuleSet:
    codes, messages = _compiled(ClassificationRule.objects.filter(organization_id=org_id, is_active=True))
    if not codes and not messages:
        return defaults
    # An own pattern with the same text replaces the default one.
    overridden = {(m.provider, m.value) for m in messages}
    merged = messages + [m for m in defaults.messages if (m.provider, m.value) not in overridden]
    return _RuleSet(own=codes, defaults=defaults.defaults, messages=sorted(merged, key=_message_order))


# --- Per-process cache ---------------------------------------------------------------------


class _Snapshot:
    """Rules compiled under one cache version. Replaced whole, never edited in place (except ``orgs``)."""

    def __init__(self, version):
        self.version = version
        self.checked_at = 0.0
        self.defaults: _RuleSet | None = None
        self.orgs: dict[int, _RuleSet] = {}


_snapshot = _Snapshot(version=None)
_lock = threading.Lock()
# Set in a thread that changed a rule inside a transaction not yet committed: that
# thread reads the rules fresh (seeing its own change) and caches nothing until
# the transaction ends, so rolled-back rows never reach the process cache.
_pending = threading.local()


def _current_version():
    version = cache.get(VERSION_KEY)
    if version is None:
        # First reader after a cache flush: everybody agrees on one new token.
        cache.add(VERSION_KEY, uuid.uuid4().hex, timeout=None)
        version = cache.get(VERSION_KEY)
    return version


def _fresh_snapshot() -> _Snapshot:
    global _snapshot
    snapshot = _snapshot
    now = time.monotonic()
    if now - snapshot.checked_at < VERSION_CHECK_SECONDS:
        return snapshot
    try:
        version = _current_version()
    except Exception:  # noqa: BLE001 - a cache outage must not stop ingestion
        log.warning("classifier: cannot read the rules version from the cache; keeping the rules loaded", exc_info=True)
        snapshot.checked_at = now
        return snapshot
    with _lock:
        if _snapshot.version != version:
            _snapshot = _Snapshot(version)
        _snapshot.checked_at = now
        return _snapshot


def _uncommitted_rule_change() -> bool:
    block = getattr(_pending, "block", None)
    if block is None:
        return False
    blocks = connections[DEFAULT_DB_ALIAS].atomic_blocks
    if blocks and blocks[0] is block:
        return True
    # That transaction is over (rolled back; a commit would have cleared the mark).
    _pending.block = None
    return False


def _rules_for(org_id: int | None) -> _RuleSet:
    if _uncommitted_rule_change():
        defaults = _load_defaults()
        return defaults if org_id is None else _load_org(org_id, defaults)
    snapshot = _fresh_snapshot()
    if org_id is None:
        if snapshot.defaults is None:
            snapshot.defaults = _load_defaults()
        return snapshot.defaults
    rules = snapshot.orgs.get(org_id)
    if rules is None:
        if snapshot.defaults is None:
            snapshot.defaults = _load_defaults()
        rules = snapshot.orgs[org_id] = _load_org(org_id, snapshot.defaults)
    return rules


def invalidate_rules() -> None:
    """Forget the compiled rules here and make every other process reload them.

    Called after a rule is saved or deleted (once the transaction commits); call it
    yourself after changing rules without ``save()``/``delete()`` (``update()``,
    ``bulk_create()``, raw SQL) and in tests that need a cold cache.
    """
    global _snapshot
    with _lock:
        _snapshot = _Snapshot(version=None)
    try:
        cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # noqa: BLE001
        log.warning("classifier: cannot bump the rules version in the cache; other processes reload late", exc_info=True)


def _rule_changed(sender, instance, using=DEFAULT_DB_ALIAS, **kwargs):
    connection = transaction.get_connection(using)
    if connection.in_atomic_block and connection.atomic_blocks:
        _pending.block = connection.atomic_blocks[0]
    # Other processes must reload only after the commit: before it they would
    # read the old rows and keep them under the new version.
    transaction.on_commit(_rules_committed, using=using)


def _rules_committed():
    _pending.block = None
    invalidate_rules()


def connect_signals() -> None:
    """Reload rules everywhere when a ClassificationRule is saved or deleted.

    Call once from ``RecoveryConfig.ready()``; calling it again is harmless.
    """
    post_save.connect(_rule_changed, sender=ClassificationRule, dispatch_uid="classifier-rule-saved")
    post_delete.connect(_rule_changed, sender=ClassificationRule, dispatch_uid="classifier-rule-deleted")


# --- Classification ------------------------------------------------------------------------


def _normalize_provider(provider: str) -> str:
    provider = (provider or "").strip().lower()
    if provider == "sandbox":
        return "stripe"  # the sandbox PSP speaks Stripe's vocabulary
    return provider if provider in PROVIDERS else "other"


def _normalize_brand(brand: str) -> str:
    key = re.sub(r"[\s_-]+", "", (brand or "").lower())
    if key.startswith(VISA):
        return VISA
    if key in ("mastercard", "master", "mc"):
        return MASTERCARD
    return key


_FIELD_NAMES = {
    ("stripe", DECLINE_CODE): "Stripe decline code",
    ("stripe", CODE): "Stripe error code",
    ("razorpay", DECLINE_CODE): "Razorpay reason",
    ("razorpay", CODE): "Razorpay error code",
    ("", DECLINE_CODE): "Decline code",
    ("", CODE): "Error code",
    ("other", DECLINE_CODE): "Decline code",
    ("other", CODE): "Error code",
}


def _signal_name(provider: str, field: str) -> str:
    if field == VISA_CODE:
        return "Visa response code"
    if field == MASTERCARD_ADVICE:
        return "Mastercard advice code"
    return _FIELD_NAMES[(provider, field)]


def _quote(message: str) -> str:
    message = " ".join(message.split())
    return f'"{message[:77]}..."' if len(message) > 80 else f'"{message}"'


def _rule_ref(rule: _Rule) -> str:
    return f"this organization's rule #{rule.id}" if rule.organization_id else f"rule #{rule.id}"


def _describe(rule: _Rule, provider: str, value: str, *, message: str = "") -> str:
    if rule.field == MESSAGE:
        return f"Message {_quote(message)} matched a pattern: {rule.description} ({_rule_ref(rule)})."
    return f"{_signal_name(provider, rule.field)} {value}: {rule.description} ({_rule_ref(rule)})."


def _duration(seconds: int) -> str:
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "1 hour" if hours == 1 else f"{hours} hours"
    minutes = max(1, round(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _label(category: str) -> str:
    return english(Category(category).label).lower()


class _Outcome:
    """The decision being built up by classify()."""

    def __init__(self):
        self.category: str | None = None
        self.action: str | None = None
        self.rule: _Rule | None = None
        self.min_delay = 0
        self.sentences: list[str] = []

    def decide(self, rule: _Rule, sentence: str):
        self.category, self.action, self.rule = rule.category, rule.action, rule
        self.min_delay = max(self.min_delay, rule.min_delay_seconds)
        self.sentences.append(sentence)

    def recategorize(self, category: str, sentence: str):
        category = str(category)
        self.category, self.action = category, CATEGORY_ACTIONS[category]
        self.sentences.append(sentence)


def _apply_advice(outcome: _Outcome, advice_code: str) -> None:
    """Stripe's advice_code, exactly as the reference's precedence step 4 describes.

    - do_not_try_again: a retryable category, or none yet, becomes do_not_retry.
    - confirm_card_data: a retryable, unknown or missing category becomes invalid_card.
    - try_again_later: never upgrades a non-retryable category; card_declined if nothing matched.
    Hard categories (fraud, expired, invalid, authentication, do_not_retry) are kept.
    """
    current = outcome.category
    name = f"Stripe advice code {advice_code}"
    if advice_code == ADVICE_DO_NOT_TRY_AGAIN:
        if current is None or current in RETRYABLE_CATEGORIES:
            outcome.recategorize(
                Category.DO_NOT_RETRY,
                f"{name}: the issuer says not to try this card again for this payment, so it is not retried "
                "(built-in rule).",
            )
        else:
            outcome.sentences.append(f"{name} also says not to retry (built-in rule).")
    elif advice_code == ADVICE_CONFIRM_CARD_DATA:
        if current is None or current in RETRYABLE_CATEGORIES or current == Category.UNKNOWN:
            outcome.recategorize(
                Category.INVALID_CARD,
                f"{name}: the issuer says some card data is wrong, so the customer must check the card details "
                "(built-in rule).",
            )
        else:
            outcome.sentences.append(f"{name}: the card data must be checked; {_label(current)} stands (built-in rule).")
    elif advice_code == ADVICE_TRY_AGAIN_LATER:
        if current is None:
            outcome.recategorize(
                Category.CARD_DECLINED,
                f"{name}: the issuer declined but allows a later retry, so it is treated as a card decline "
                "(built-in rule).",
            )
        elif current in RETRYABLE_CATEGORIES:
            outcome.sentences.append(f"{name}: the issuer allows a later retry (built-in rule).")
        else:
            outcome.sentences.append(f"{name} does not make this {_label(current)} failure retryable (built-in rule).")
    else:
        outcome.sentences.append(f"{name} is not one Tinko knows; ignored.")


def classify(
    *,
    organization,
    provider: str,
    code: str = "",
    decline_code: str = "",
    advice_code: str = "",
    network_advice_code: str = "",
    network_decline_code: str = "",
    message: str = "",
    card_brand: str = "",
) -> Classification:
    """Classify one payment failure. Reads rules from the process cache; never writes.

    ``organization`` is an Organization instance or its primary key (``None``: the
    default rules only). ``provider`` is stripe | razorpay | sandbox | other (sandbox
    is classified as Stripe; anything else counts as other). Razorpay's
    ``error.code`` goes in ``code`` and ``error.reason`` in ``decline_code``.
    ``card_brand`` decides how ``network_decline_code`` (Visa) and
    ``network_advice_code`` (Mastercard) are read; blank reads both. The module
    docstring gives the precedence.
    """
    org_id = getattr(organization, "pk", organization)
    rules = _rules_for(org_id)
    provider = _normalize_provider(provider)
    brand = _normalize_brand(card_brand)
    # Reasons quote codes as the PSP sent them; lookups use the normalized form.
    shown_decline_code, shown_code = (decline_code or "").strip(), (code or "").strip()
    decline_code = normalize_value(DECLINE_CODE, decline_code)
    code = normalize_value(CODE, code)
    advice_code = (advice_code or "").strip().lower()
    message = (message or "").strip()
    mac = normalize_value(MASTERCARD_ADVICE, network_advice_code) if brand in ("", MASTERCARD) else ""
    visa = normalize_value(VISA_CODE, network_decline_code) if brand in ("", VISA) else ""

    mac_rule = rules.lookup(provider, MASTERCARD_ADVICE, mac)
    visa_rule = rules.lookup(provider, VISA_CODE, visa)

    # 1. A network hard stop is final. The card networks' rules bind every
    # merchant, so an organization's own rule for the code cannot lift the stop.
    for field, rule, value in ((MASTERCARD_ADVICE, mac_rule, mac), (VISA_CODE, visa_rule, visa)):
        if rule is not None and not rule.network_stop:
            rule = rules.default_stop(provider, field, value) or rule
        if rule is not None and rule.network_stop:
            action = STOP if rule.action == AUTO_RETRY else rule.action
            return Classification(
                category=rule.category,
                action=action,
                min_delay=timedelta(0),
                network_stop=True,
                reason=f"{_describe(rule, provider, value)} The card network forbids any reattempt, "
                "so this payment is never retried automatically.",
                rule_id=rule.id,
            )

    outcome = _Outcome()
    unmatched = []

    # 2. The decline code (Stripe decline_code, Razorpay error.reason).
    if decline_code:
        rule = rules.lookup(provider, DECLINE_CODE, decline_code)
        if rule is not None:
            outcome.decide(rule, _describe(rule, provider, shown_decline_code))
        else:
            unmatched.append(f"{_signal_name(provider, DECLINE_CODE)} {shown_decline_code}")

    # 3. Card-network codes that are not hard stops.
    if mac_rule is not None and mac_rule.min_delay_seconds:
        # MAC 24-30: Mastercard's "retry after ..." for insufficient funds.
        if outcome.category is None or outcome.category in RETRYABLE_CATEGORIES:
            outcome.decide(mac_rule, _describe(mac_rule, provider, mac))
        else:
            outcome.sentences.append(_describe(mac_rule, provider, mac))
    elif mac_rule is not None and outcome.category is None:
        outcome.decide(mac_rule, _describe(mac_rule, provider, mac))
    if visa_rule is not None and outcome.category is None:
        outcome.decide(visa_rule, _describe(visa_rule, provider, visa))

    # 4. The error code: decides only without a decline code; its wait always counts.
    if code:
        rule = rules.lookup(provider, CODE, code)
        if rule is None:
            if outcome.category is None:
                unmatched.append(f"{_signal_name(provider, CODE)} {shown_code}")
        elif outcome.category is None and not decline_code:
            outcome.decide(rule, _describe(rule, provider, shown_code))
        elif rule.min_delay_seconds > outcome.min_delay:
            outcome.sentences.append(_describe(rule, provider, shown_code))
            outcome.min_delay = rule.min_delay_seconds
    if outcome.category is None and visa and brand == VISA and visa_rule is None:
        outcome.recategorize(
            Category.CARD_DECLINED,
            f"Visa response code {visa} is in none of Visa's categories 1-3, so it is a generic decline "
            "(Visa category 4, built-in rule).",
        )

    # 5. Stripe's advice code.
    if advice_code:
        _apply_advice(outcome, advice_code)

    # 6. The message, only when no code matched at all.
    if outcome.category is None and message:
        rule = rules.match_message(provider, message)
        if rule is not None:
            if unmatched:
                outcome.sentences.append(f"No rule for {' or '.join(unmatched)}.")
            outcome.decide(rule, _describe(rule, provider, "", message=message))

    # 7. Nothing matched.
    if outcome.category is None:
        given = unmatched + ([f"message {_quote(message)}"] if message else [])
        if visa and brand != VISA and visa_rule is None:
            given.append(f"network decline code {visa}")
        if mac and mac_rule is None:
            given.append(f"Mastercard advice code {mac}")
        detail = ", ".join(given) if given else "no code or message given"
        return Classification(
            category=Category.UNKNOWN.value,
            action=STOP,
            min_delay=timedelta(0),
            network_stop=False,
            reason=" ".join(outcome.sentences + [f"No rule matched ({detail}); needs manual review."]),
            rule_id=None,
        )

    retry = outcome.action == AUTO_RETRY
    min_delay = outcome.min_delay if retry else 0
    if min_delay:
        outcome.sentences.append(f"Earliest automatic retry in {_duration(min_delay)}.")
    return Classification(
        category=outcome.category,
        action=outcome.action,
        min_delay=timedelta(seconds=min_delay),
        network_stop=False,
        reason=" ".join(outcome.sentences),
        rule_id=outcome.rule.id if outcome.rule is not None else None,
    )
