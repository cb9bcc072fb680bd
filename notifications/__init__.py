"""Messages to customers and signed webhooks to merchants.

Module map (what each module does; callers outside this app use the ones marked *public*):

* ``sending.py`` (*public*): where a message starts. ``send_for_attempt`` (the recovery engine's
  attempt) and ``send_link`` (a member's "send a new link") apply the respect rules, then compose.
* ``rules.py`` (*public*: ``RespectFacts``, ``address_for``, ``suppress``): respect rules (quiet
  hours, the 24-hour cap, opt-outs, STOP, bounces) and the suppression records behind them.
* ``copy.py``: which copy a message uses (the organization's template for the customer's
  language, else the shipped default in ``defaults.py``) and its sender; cached per organization.
* ``rendering.py``: the sandboxed template language, the message context, the e-mail layout.
* ``compose.py``: renders a message and stores it ``queued`` (engine messages and the editor's
  test messages take the same path, ``store_rendered``); ``stored_together`` (through the
  messenger) has a recovery job's messages inserted together at the end of its block.
* ``delivery.py`` (*public*: ``schedule`` after commit, ``delivery_batch`` for a job's messages,
  ``deliver_many`` to send due messages now in this process): scheduled and retried by the
  message's own row (``next_attempt_at``, ``attempts``, a lease), through ``channels.py``
  (e-mail through anymail, SMS and WhatsApp through Twilio).
* ``tracking.py`` (*public*: ``count_link_click``): status from the providers, opens and clicks,
  and the merchant webhooks they raise; ``esp_webhooks.py`` guards anymail's endpoints.
* ``webhooks.py`` (*public*: ``emit``, ``payment_event``): signed webhooks to merchants.
* ``console.py``, ``views.py``, ``tasks.py``, ``timeline.py``: the console pages, public
  endpoints (unsubscribe, Twilio, open pixel), background jobs, payment timeline entries.
"""
