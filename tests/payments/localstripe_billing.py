"""localstripe, plus the parameters of Stripe that Tinko needs and localstripe lacks.

``POST /v1/invoices/{id}/pay`` takes ``payment_method`` and ``off_session`` in
Stripe; localstripe's takes neither and always charges the customer's default.
This shim (run in localstripe's own process, by tests/payments/localstripe.py)
accepts both and charges ``payment_method`` as Stripe does. ``GET
/v1/payment_intents`` takes ``customer`` and ``created`` in Stripe (newest
first); localstripe's takes neither. Everything else
(customers, cards, subscriptions, invoices, PaymentIntents, declines) is
localstripe's own behaviour, over real HTTP.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on the path, and its localstripe.py would hide the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from localstripe import resources  # noqa: E402

_original_pay = resources.Invoice._api_pay_invoice


def pay_invoice(id, payment_method=None, off_session=None, **kwargs):
    if kwargs:
        raise resources.UserError(400, "Unexpected " + ", ".join(kwargs))
    if payment_method is None:
        return _original_pay(id)
    invoice = resources.Invoice._api_retrieve(id)
    customer = resources.Customer._api_retrieve(invoice.customer)
    resources.PaymentMethod._api_retrieve(payment_method)  # 404 for an unknown card, as Stripe
    # localstripe charges the customer's default: make it the chosen card for this one payment.
    saved = customer.invoice_settings.get("default_payment_method")
    customer.invoice_settings["default_payment_method"] = payment_method
    try:
        return _original_pay(id)
    finally:
        customer.invoice_settings["default_payment_method"] = saved


def list_payment_intents(url, customer=None, created=None, limit=None, starting_after=None, **kwargs):
    if kwargs:
        raise resources.UserError(400, "Unexpected " + ", ".join(kwargs))
    listed = resources.List(url, limit=limit, starting_after=starting_after)
    intents = [v for k, v in resources.store.items() if k.startswith("payment_intent:")]
    if customer is not None:
        intents = [i for i in intents if i.customer == customer]
    for op, value in (created or {}).items():
        bound = int(value)
        check = {"gt": bound.__lt__, "gte": bound.__le__, "lt": bound.__gt__, "lte": bound.__ge__}.get(op)
        if check is None:
            raise resources.UserError(400, "Bad request")
        intents = [i for i in intents if check(i.created)]
    listed._list = sorted(intents, key=lambda i: i.created, reverse=True)
    return listed


resources.PaymentIntent._api_list_all = staticmethod(list_payment_intents)

resources.extra_apis[:] = [
    (method, url, pay_invoice if url == "/v1/invoices/{id}/pay" else func) for method, url, func in resources.extra_apis
]

if __name__ == "__main__":
    from localstripe import server  # registers the routes, the patched one included

    server.start()
