"""The engine's messenger (recovery.ports.Messenger): notifications' public functions behind the engine's port."""

from __future__ import annotations

from notifications import channels, compose, delivery, rules, sending


class NotificationsMessenger:
    def enabled_channels(self) -> set[str]:
        return channels.enabled_channels()

    def address_for(self, customer, channel: str) -> str:
        return rules.address_for(customer, channel)

    def load_facts(self, messages, *, now) -> rules.RespectFacts:
        return rules.RespectFacts.load(messages, now=now)

    def send_for_attempt(self, *, payment, attempt, now, facts=None) -> sending.SendResult:
        return sending.send_for_attempt(payment=payment, attempt=attempt, now=now, facts=facts)

    def stored_together(self):
        return compose.stored_together()

    def delivery_batch(self):
        return delivery.delivery_batch()
