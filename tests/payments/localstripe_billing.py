"""localstripe, plus the one parameter of Stripe Billing that Tinko needs and localstripe lacks.

``POST /v1/invoices/{id}/pay`` takes ``payment_method`` and ``off_session`` in
Stripe; localstripe's takes neither and always charges the customer's default.
This shim (run in localstripe's own process, by tests/payments/localstripe.py)
accepts both and charges ``payment_method`` as Stripe does. Everything else
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


resources.extra_apis[:] = [
    (method, url, pay_invoice if url == "/v1/invoices/{id}/pay" else func) for method, url, func in resources.extra_apis
]

if __name__ == "__main__":
    from localstripe import server  # registers the routes, the patched one included

    server.start()
