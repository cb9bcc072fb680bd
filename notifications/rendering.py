"""Rendering merchants' templates safely, and counting SMS segments.

Templates use Django's template language on a sandboxed engine: only the tags
listed in :data:`ALLOWED_TAGS` (no ``load``, ``include``, ``url``, ``debug``…)
and the default filters. The context is fixed and holds plain strings only, so
a template can reach nothing else. These variables exist (documented in the
editor too):

=================  ==============================================================
``customer_name``  the customer's first name ("" when unknown)
``merchant_name``  the organization's display name
``amount``         the amount due, formatted for the locale and currency ("₹1,499.00")
``pay_url``        the customer's pay link
``expires_at``     when the link stops working, in the customer's time zone and language
``support_email``  the organization's support address ("" when not set)
``card_brand``     the card's brand ("visa"; "" when unknown)
``card_last4``     the card's last four digits ("" when unknown)
``action``         what the customer must do: ``update_card``, ``authenticate`` or ``pay_now``
``brand_color``    the organization's accent colour ("#4f46e5")
``logo_url``       the organization's logo URL ("" when not set)
=================  ==============================================================

An unknown variable or a syntax error is a :class:`TemplateProblem`, which the
editor shows as a form error.

Work is bounded, in the editor's preview and in the workers alike (a template
cannot make a worker spin or fill memory): at most :data:`MAX_SOURCE_LENGTH`
characters of source, :data:`MAX_LOOP_ITERATIONS` loop iterations per
render, :data:`MAX_OUTPUT_LENGTH` characters of output (counted as loops
produce it) and :data:`MAX_RENDER_SECONDS` of rendering; filters that pad or
format to a width take at most :data:`MAX_FILTER_WIDTH`. Past a limit the
render stops with a :class:`TemplateLimit` (a TemplateProblem): the editor shows
it, a worker sends the shipped copy instead.
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.template import Context, Engine, Library, TemplateSyntaxError
from django.template import defaultfilters, defaulttags
from django.template.base import FilterExpression, Node, NodeList, Template
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from recovery.models import Category
from tinko.mail import inline_css

CONTEXT_VARIABLES = {
    "customer_name": _("the customer's first name (empty when unknown)"),
    "merchant_name": _("your organization's display name"),
    "amount": _("the amount due, formatted for the language and currency"),
    "pay_url": _("the customer's pay link"),
    "expires_at": _("when the link stops working, in the customer's time zone"),
    "support_email": _("your support e-mail address (empty when not set)"),
    "card_brand": _("the card's brand (empty when unknown)"),
    "card_last4": _("the card's last four digits (empty when unknown)"),
    "action": _("update_card, authenticate or pay_now, from the decline"),
    "brand_color": _("your accent colour"),
    "logo_url": _("your logo's URL (empty when not set)"),
}

ALLOWED_TAGS = ("if", "for", "with", "firstof", "spaceless", "comment", "verbatim", "autoescape", "filter",
                "templatetag", "now", "cycle", "ifchanged")

# What the decline asks of the customer.
ACTIONS = {
    Category.AUTHENTICATION_REQUIRED: "authenticate",
    Category.EXPIRED_CARD: "update_card",
    Category.INVALID_CARD: "update_card",
    Category.CARD_DECLINED: "update_card",
    Category.DO_NOT_RETRY: "update_card",
    Category.FRAUD_OR_STOLEN: "update_card",
}


def action_for(category: str) -> str:
    return ACTIONS.get(category, "pay_now")


class TemplateProblem(Exception):
    """A template that cannot be used: the message says why, in words for the merchant."""


class TemplateLimit(TemplateProblem):
    """A template that asks for more work than a message may take."""


MAX_SOURCE_LENGTH = 20_000
MAX_LOOP_ITERATIONS = 10_000
MAX_OUTPUT_LENGTH = 100_000
MAX_RENDER_SECONDS = 1.0
MAX_FILTER_WIDTH = 500


class _Budget:
    """What one render may still spend; carried on the Context (``context.sandbox_budget``)."""

    def __init__(self):
        self.iterations = 0
        self.output = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise TemplateLimit(f"The template's loops run more than {MAX_LOOP_ITERATIONS:,} times.")
        self.check_time()

    def produced(self, length: int) -> None:
        self.output += length
        if self.output > MAX_OUTPUT_LENGTH:
            raise TemplateLimit(f"The template produces more than {MAX_OUTPUT_LENGTH:,} characters.")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"The template takes longer than {MAX_RENDER_SECONDS:g} s to render.")


class _MeteredValues(list):
    """A loop's sequence that charges the render's budget for every item taken."""

    def __init__(self, values, budget: _Budget):
        super().__init__(values)
        self._budget = budget

    def __iter__(self):
        for item in super().__iter__():
            self._budget.tick()
            yield item

    def __reversed__(self):
        for item in super().__reversed__():
            self._budget.tick()
            yield item


class _MeteredSequence:
    """Stands for a ``{% for %}`` tag's sequence expression (set once, when the template is compiled)."""

    def __init__(self, expression):
        self.expression = expression

    def resolve(self, context, ignore_failures=False):
        values = self.expression.resolve(context, ignore_failures=ignore_failures)
        budget = getattr(context, "sandbox_budget", None)
        if values is None or budget is None:
            return values
        if isinstance(values, str):
            values = list(values)
        try:
            return _MeteredValues(values, budget)
        except TypeError:  # not iterable: let the tag treat it as before
            return values


class _MeteredNode(Node):
    """Wraps a node inside a loop's body: its output counts against the render's budget as it is made."""

    def __init__(self, inner: Node):
        self.inner = inner
        self.token = getattr(inner, "token", None)
        self.origin = getattr(inner, "origin", None)

    def render(self, context):
        text = self.inner.render_annotated(context)
        budget = getattr(context, "sandbox_budget", None)
        if budget is not None:
            budget.produced(len(text))
        return text


def _meter_loops(nodelist) -> None:
    """Instrument every ``{% for %}`` of a freshly compiled template (before any thread renders it)."""
    for node in nodelist:
        if isinstance(node, defaulttags.ForNode):
            node.sequence = _MeteredSequence(node.sequence)
            _meter_loops(node.nodelist_loop)
            node.nodelist_loop = NodeList(_MeteredNode(child) for child in node.nodelist_loop)
            if node.nodelist_empty:
                _meter_loops(node.nodelist_empty)
            continue
        for attr in getattr(node, "child_nodelists", ()):
            child = getattr(node, attr, None)
            if child:
                _meter_loops(child)
        # {% if %} keeps its branches in (condition, nodelist) pairs.
        for _, branch in getattr(node, "conditions_nodelists", ()):
            _meter_loops(branch)


def _bounded_width(name: str, fn):
    """A filter taking a width or a precision, refusing one over MAX_FILTER_WIDTH."""

    def checked(value, arg):
        try:
            width = abs(int(arg))
        except (TypeError, ValueError):
            width = 0
        if width > MAX_FILTER_WIDTH:
            raise TemplateLimit(f"The {name} filter's width {arg} is over the limit of {MAX_FILTER_WIDTH}.")
        return fn(value, arg)

    return functools.wraps(fn)(checked)


def _bounded_format(fn):
    def checked(value, arg):
        # printf widths and precisions ("%0999999d") would build strings of any size.
        if any(int(n) > MAX_FILTER_WIDTH for n in re.findall(r"\d+", str(arg))):
            raise TemplateLimit(f"The stringformat filter's width in {arg!r} is over the limit of {MAX_FILTER_WIDTH}.")
        return fn(value, arg)

    return functools.wraps(fn)(checked)


_WIDTH_FILTERS = ("ljust", "rjust", "center", "floatformat", "truncatechars", "truncatechars_html",
                  "truncatewords", "truncatewords_html", "wordwrap", "get_digit")


def _sandbox_library() -> Library:
    library = Library()
    for name in ALLOWED_TAGS:
        library.tags[name] = defaulttags.register.tags[name]
    library.filters.update(defaultfilters.register.filters)
    for name in _WIDTH_FILTERS:
        library.filters[name] = _bounded_width(name, defaultfilters.register.filters[name])
    library.filters["stringformat"] = _bounded_format(defaultfilters.register.filters["stringformat"])
    return library


def _engine(autoescape: bool) -> Engine:
    engine = Engine(autoescape=autoescape, libraries={})
    # Engine() always adds Django's default tag libraries; replace them by the sandbox's.
    engine.template_builtins = [_sandbox_library()]
    return engine


ENGINES = {True: _engine(True), False: _engine(False)}


def _expressions(obj, seen, out, defined):
    """Every FilterExpression reachable from a compiled node (conditions, arguments, loops)."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, FilterExpression):
        out.append(obj)
        for _filter, args in obj.filters:
            for is_var, arg in args:
                if is_var:
                    out.append(arg)  # a Variable
        return
    if isinstance(obj, (list, tuple)):
        for item in obj:
            _expressions(item, seen, out, defined)
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str):
                defined.add(key)
            _expressions(value, seen, out, defined)
        return
    if hasattr(obj, "__dict__") and type(obj).__module__.startswith("django.template"):
        loopvars = getattr(obj, "loopvars", None)
        if loopvars:
            defined.update(loopvars)
        for value in vars(obj).values():
            _expressions(value, seen, out, defined)


def _variable_names(template: Template) -> tuple[set[str], set[str]]:
    found: list = []
    defined: set[str] = {"forloop", "True", "False", "None"}
    _expressions(template.nodelist, set(), found, defined)
    names = set()
    for expr in found:
        var = expr.var if isinstance(expr, FilterExpression) else expr
        lookups = getattr(var, "lookups", None)
        if lookups:
            names.add(lookups[0])
    return names, defined


def compile_template(source: str, *, html: bool = False) -> Template:
    """Compile ``source`` on the sandbox; TemplateProblem for a syntax error or an unknown variable."""
    return _compiled(source, html)


# Compiled templates are immutable once built: ten thousand messages reuse a handful of them.
@functools.lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    if len(source) > MAX_SOURCE_LENGTH:
        raise TemplateLimit(f"The template is {len(source):,} characters long; the limit is {MAX_SOURCE_LENGTH:,}.")
    try:
        template = Template(source, engine=ENGINES[html])
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"Template error: {exc}") from None
    except RecursionError:
        raise TemplateProblem("Template error: the tags are nested too deeply.") from None
    names, defined = _variable_names(template)
    unknown = sorted(names - set(CONTEXT_VARIABLES) - defined)
    if unknown:
        raise TemplateProblem(
            "Unknown variable" + ("s" if len(unknown) > 1 else "") + ": " + ", ".join(unknown)
            + ". Available: " + ", ".join(CONTEXT_VARIABLES) + "."
        )
    _meter_loops(template.nodelist)
    return template


def render_source(source: str, context: dict, *, html: bool = False) -> str:
    """Render ``source`` on the sandbox within the limits; TemplateProblem (or TemplateLimit) when it cannot."""
    if not source:
        return ""
    template = compile_template(source, html=html)
    ctx = Context(context, autoescape=html)
    ctx.sandbox_budget = budget = _Budget()
    try:
        text = template.render(ctx)
    except RecursionError:
        raise TemplateLimit("The template nests too deeply to render.") from None
    budget.produced(len(text))
    return text


def placeholder_context() -> dict:
    """A context of realistic sample values, for checking a template without an organization at hand."""
    return {
        "customer_name": "Ada", "merchant_name": "Example Store", "amount": "€1,499.00",
        "pay_url": "https://tinko.example.com/pay/" + "x" * 43 + "/", "expires_at": "12 Mar 2026, 18:00:00",
        "support_email": "support@example.com", "card_brand": "visa", "card_last4": "4242",
        "action": "update_card", "brand_color": "#4f46e5", "logo_url": "https://example.com/logo.png",
    }


def check_template(source: str, *, html: bool = False, context: dict | None = None) -> None:
    """TemplateProblem unless ``source`` compiles and renders within the limits (with sample values)."""
    render_source(source, context or placeholder_context(), html=html)


# --- Context ---------------------------------------------------------------------------------------


def babel_locale(locale: str) -> str:
    return (locale or "en").replace("-", "_")


def format_expiry(when: datetime | None, *, tz: ZoneInfo, locale: str) -> str:
    """To the minute, with the zone's name: "Dec 5, 2026, 1:18 PM (India Standard Time)" (an unknown locale: English)."""
    from tinko.formatting import format_when

    return format_when(when, tz=tz, language=locale, zone=True)


def format_money(amount: int, currency: str, locale: str) -> str:
    from tinko.currencies import format_amount

    try:
        return format_amount(amount, currency, babel_locale(locale))
    except Exception:
        return format_amount(amount, currency, "en")


def build_context(*, organization, customer=None, payment=None, amount=None, currency=None, pay_url: str,
                  expires_at=None, locale: str, category: str = "") -> dict:
    """The fixed context of a message: plain strings only."""
    tz_name = (customer.timezone if customer is not None and customer.timezone else "") or organization.timezone
    name = customer.name.split()[0] if customer is not None and customer.name.strip() else ""
    return {
        "customer_name": name,
        "merchant_name": organization.brand_name,
        "amount": format_money(amount if amount is not None else payment.amount,
                               currency or payment.currency, locale),
        "pay_url": pay_url,
        "expires_at": format_expiry(expires_at, tz=ZoneInfo(tz_name), locale=locale),
        "support_email": organization.support_email or "",
        "card_brand": (payment.card_brand if payment is not None else "") or "",
        "card_last4": (payment.card_last4 if payment is not None else "") or "",
        "action": action_for(category or (payment.category if payment is not None else "")),
        "brand_color": organization.accent_color or "#4f46e5",
        "logo_url": organization.logo_url or "",
    }


# --- Rendering a whole message --------------------------------------------------------------------


@dataclass
class Rendered:
    subject: str
    text: str
    html: str
    segments: int | None = None
    encoding: str = ""


def render_message(*, copy, channel: str, context: dict, unsubscribe_url: str = "", open_pixel_url: str = "",
                   locale: str = "en") -> Rendered:
    """Render a template (or shipped default) to what is sent. TemplateProblem on a bad template."""
    text = render_source(copy.text, context).strip() + ("\n" if channel == "email" else "")
    if channel != "email":
        count, encoding = sms_segments(text)
        return Rendered(subject="", text=text, html="", segments=count, encoding=encoding)
    subject = " ".join(render_source(copy.subject, context).split())
    from notifications.defaults import default_copy, unsubscribe_label

    html_source = copy.html or default_copy(channel="email", kind="first_notice", locale="en").html
    content = render_source(html_source, context, html=True)
    button = " ".join(render_source(copy.button_label or "", context).split()) or context["pay_url"]
    label = unsubscribe_label(locale)
    if unsubscribe_url:
        text += f"\n--\n{label}: {unsubscribe_url}\n"
    layout = render_to_string("notifications/email/layout.html", {
        **context,
        "subject": subject, "content": content, "button_label": button,
        "unsubscribe_url": unsubscribe_url, "unsubscribe_label": label, "open_pixel_url": open_pixel_url,
        "lang": (locale or "en").split("-")[0],
    })
    return Rendered(subject=subject, text=text, html=inline_css(layout))


# --- SMS segments ---------------------------------------------------------------------------------

# GSM 03.38 basic character set, and the extension table (each of those costs two septets).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


def sms_segments(text: str) -> tuple[int, str]:
    """(segments, encoding): GSM-7 fits 160 septets (153 per part when split), UCS-2 70 (67 per part)."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        septets = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        return (1 if septets <= 160 else math.ceil(septets / 153)), "GSM-7"
    units = len(text.encode("utf-16-le")) // 2
    return (1 if units <= 70 else math.ceil(units / 67)), "UCS-2"
