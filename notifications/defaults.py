"""The copy Tinko ships, in English, Hindi and Spanish, for every channel and kind of message.

Each default is composed from a few phrases per locale so the three languages
stay parallel. The copy branches on ``action`` (update the card, authenticate,
or simply pay), which comes from the decline category, so one template per
kind fits every decline. Merchants override any of them in the console.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from recovery.models import MessageKind

PHRASES = {
    "en": {
        "hello": "{% if customer_name %}Hi {{ customer_name }},{% else %}Hello,{% endif %}",
        "intro": {
            MessageKind.FIRST_NOTICE: "Your payment of {{ amount }} to {{ merchant_name }} did not go through.",
            MessageKind.REMINDER: "This is a reminder that your payment of {{ amount }} to {{ merchant_name }} is still unpaid.",
            MessageKind.FINAL_NOTICE: "This is our last reminder: your payment of {{ amount }} to {{ merchant_name }} is still unpaid.",
            MessageKind.AUTHENTICATION_NEEDED: "Your bank needs you to confirm your payment of {{ amount }} to {{ merchant_name }}.",
            MessageKind.CARD_EXPIRING: "The card you use with {{ merchant_name }}{% if card_last4 %} (ending {{ card_last4 }}){% endif %} has expired or is about to, so your payment of {{ amount }} could not be taken.",
        },
        "update_card": "Please pay with another card or update your card details.",
        "authenticate": "It only takes a moment: open the link and approve the payment with your bank.",
        "pay_now": "You can pay securely in a minute with the link below.",
        "button": {"update_card": "Update card and pay", "authenticate": "Confirm payment", "pay_now": "Pay {{ amount }}"},
        "expires": "The link works until {{ expires_at }}.",
        "help": "{% if support_email %}Questions? Write to {{ support_email }}.{% endif %}",
        "subject": {
            MessageKind.FIRST_NOTICE: "Your payment to {{ merchant_name }} did not go through",
            MessageKind.REMINDER: "Reminder: {{ amount }} to {{ merchant_name }} is still unpaid",
            MessageKind.FINAL_NOTICE: "Last reminder: {{ amount }} to {{ merchant_name }}",
            MessageKind.AUTHENTICATION_NEEDED: "Please confirm your payment to {{ merchant_name }}",
            MessageKind.CARD_EXPIRING: "Your card for {{ merchant_name }} needs updating",
        },
        "sms": "{{ merchant_name }}: your payment of {{ amount }} did not go through. Pay securely: {{ pay_url }}",
        "sms_auth": "{{ merchant_name }}: please confirm your payment of {{ amount }} with your bank: {{ pay_url }}",
        "unsubscribe": "Unsubscribe from these e-mails",
    },
    "hi": {
        "hello": "{% if customer_name %}नमस्ते {{ customer_name }},{% else %}नमस्ते,{% endif %}",
        "intro": {
            MessageKind.FIRST_NOTICE: "{{ merchant_name }} को आपका {{ amount }} का भुगतान पूरा नहीं हो सका।",
            MessageKind.REMINDER: "याद दिलाना चाहते हैं: {{ merchant_name }} को आपका {{ amount }} का भुगतान अभी बाकी है।",
            MessageKind.FINAL_NOTICE: "यह हमारा अंतिम अनुस्मारक है: {{ merchant_name }} को आपका {{ amount }} का भुगतान अभी बाकी है।",
            MessageKind.AUTHENTICATION_NEEDED: "आपके बैंक को {{ merchant_name }} को {{ amount }} के भुगतान की पुष्टि चाहिए।",
            MessageKind.CARD_EXPIRING: "{{ merchant_name }} के साथ इस्तेमाल होने वाला आपका कार्ड{% if card_last4 %} ({{ card_last4 }} पर समाप्त){% endif %} समाप्त हो गया है या होने वाला है, इसलिए {{ amount }} का भुगतान नहीं हो सका।",
        },
        "update_card": "कृपया किसी दूसरे कार्ड से भुगतान करें या अपने कार्ड का विवरण अपडेट करें।",
        "authenticate": "बस एक पल लगेगा: लिंक खोलें और अपने बैंक के साथ भुगतान स्वीकृत करें।",
        "pay_now": "नीचे दिए गए लिंक से आप एक मिनट में सुरक्षित भुगतान कर सकते हैं।",
        "button": {"update_card": "कार्ड अपडेट करें और भुगतान करें", "authenticate": "भुगतान की पुष्टि करें", "pay_now": "{{ amount }} का भुगतान करें"},
        "expires": "यह लिंक {{ expires_at }} तक मान्य है।",
        "help": "{% if support_email %}कोई प्रश्न? {{ support_email }} पर लिखें।{% endif %}",
        "subject": {
            MessageKind.FIRST_NOTICE: "{{ merchant_name }} को आपका भुगतान पूरा नहीं हुआ",
            MessageKind.REMINDER: "अनुस्मारक: {{ merchant_name }} को {{ amount }} का भुगतान बाकी है",
            MessageKind.FINAL_NOTICE: "अंतिम अनुस्मारक: {{ merchant_name }} को {{ amount }}",
            MessageKind.AUTHENTICATION_NEEDED: "कृपया {{ merchant_name }} को अपने भुगतान की पुष्टि करें",
            MessageKind.CARD_EXPIRING: "{{ merchant_name }} के लिए आपका कार्ड अपडेट करना होगा",
        },
        "sms": "{{ merchant_name }}: आपका {{ amount }} का भुगतान नहीं हो सका। सुरक्षित भुगतान करें: {{ pay_url }}",
        "sms_auth": "{{ merchant_name }}: कृपया {{ amount }} के भुगतान की अपने बैंक से पुष्टि करें: {{ pay_url }}",
        "unsubscribe": "इन ई-मेल की सदस्यता समाप्त करें",
    },
    "es": {
        "hello": "{% if customer_name %}Hola, {{ customer_name }}:{% else %}Hola:{% endif %}",
        "intro": {
            MessageKind.FIRST_NOTICE: "Tu pago de {{ amount }} a {{ merchant_name }} no se pudo completar.",
            MessageKind.REMINDER: "Te recordamos que tu pago de {{ amount }} a {{ merchant_name }} sigue pendiente.",
            MessageKind.FINAL_NOTICE: "Este es nuestro último recordatorio: tu pago de {{ amount }} a {{ merchant_name }} sigue pendiente.",
            MessageKind.AUTHENTICATION_NEEDED: "Tu banco necesita que confirmes tu pago de {{ amount }} a {{ merchant_name }}.",
            MessageKind.CARD_EXPIRING: "La tarjeta que usas con {{ merchant_name }}{% if card_last4 %} (terminada en {{ card_last4 }}){% endif %} ha caducado o está por caducar, por eso no pudimos cobrar {{ amount }}.",
        },
        "update_card": "Paga con otra tarjeta o actualiza los datos de tu tarjeta.",
        "authenticate": "Solo lleva un momento: abre el enlace y aprueba el pago con tu banco.",
        "pay_now": "Puedes pagar de forma segura en un minuto con el enlace de abajo.",
        "button": {"update_card": "Actualizar tarjeta y pagar", "authenticate": "Confirmar pago", "pay_now": "Pagar {{ amount }}"},
        "expires": "El enlace es válido hasta el {{ expires_at }}.",
        "help": "{% if support_email %}¿Preguntas? Escribe a {{ support_email }}.{% endif %}",
        "subject": {
            MessageKind.FIRST_NOTICE: "Tu pago a {{ merchant_name }} no se completó",
            MessageKind.REMINDER: "Recordatorio: {{ amount }} a {{ merchant_name }} sigue pendiente",
            MessageKind.FINAL_NOTICE: "Último recordatorio: {{ amount }} a {{ merchant_name }}",
            MessageKind.AUTHENTICATION_NEEDED: "Confirma tu pago a {{ merchant_name }}",
            MessageKind.CARD_EXPIRING: "Tu tarjeta para {{ merchant_name }} necesita actualizarse",
        },
        "sms": "{{ merchant_name }}: tu pago de {{ amount }} no se completó. Paga de forma segura: {{ pay_url }}",
        "sms_auth": "{{ merchant_name }}: confirma tu pago de {{ amount }} con tu banco: {{ pay_url }}",
        "unsubscribe": "Darse de baja de estos correos",
    },
}


@dataclass(frozen=True)
class Copy:
    subject: str
    text: str
    html: str
    button_label: str


def _action_block(p) -> str:
    return (
        f'{{% if action == "update_card" %}}{p["update_card"]}'
        f'{{% elif action == "authenticate" %}}{p["authenticate"]}'
        f'{{% else %}}{p["pay_now"]}{{% endif %}}'
    )


def default_copy(*, channel: str, kind: str, locale: str) -> Copy:
    return _default_copy(channel, kind, locale)


@functools.lru_cache(maxsize=256)
def _default_copy(channel: str, kind: str, locale: str) -> Copy:
    """The shipped copy for ``channel``/``kind`` in ``locale`` (English when Tinko ships none for it)."""
    p = PHRASES.get(locale) or PHRASES["en"]
    if channel != "email":
        sms = p["sms_auth"] if kind == MessageKind.AUTHENTICATION_NEEDED else p["sms"]
        return Copy(subject="", text=sms, html="", button_label="")
    intro = p["intro"][kind]
    action = _action_block(p)
    button = (
        f'{{% if action == "update_card" %}}{p["button"]["update_card"]}'
        f'{{% elif action == "authenticate" %}}{p["button"]["authenticate"]}'
        f'{{% else %}}{p["button"]["pay_now"]}{{% endif %}}'
    )
    text = "\n\n".join([
        f"{p['hello']}",
        f"{intro} {action}",
        "{{ pay_url }}",
        p["expires"],
        p["help"],
        "{{ merchant_name }}",
    ]) + "\n"
    html = (
        f"<p>{p['hello']}</p>\n<p>{intro}</p>\n<p>{action}</p>\n"
        f'<p class="muted">{p["expires"]}</p>\n<p class="muted">{p["help"]}</p>\n'
    )
    return Copy(subject=p["subject"][kind], text=text, html=html, button_label=button)


def unsubscribe_label(locale: str) -> str:
    return (PHRASES.get(locale) or PHRASES.get((locale or "").split("-")[0].lower()) or PHRASES["en"])["unsubscribe"]

