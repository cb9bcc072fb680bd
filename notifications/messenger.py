"""The engine's messenger (recovery.ports.Messenger): notifications' public functions behind the engine's port."""

from __future__ import annotations

from notifications import channels, services


class NotificationsMessenger:
    def enabled_channels(self) -> set[str]:
        return channels.enabled_channels()

    def address_for(self, customer, channel: str) -> str:
        return services.address_for(customer, channel)

    def load_facts(self, messages, *, now) -> services.RespectFacts:
        return services.RespectFacts.load(messages, now=now)

    def send_for_attempt(self, *, payment, attempt, now, facts=None) -> services.SendResult:
        return services.send_for_attempt(payment=payment, attempt=attempt, now=now, facts=facts)

    def delivery_batch(self):
        return services.delivery_batch()
