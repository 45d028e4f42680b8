"""HTML of the sandbox's hosted checkout page: a plain form, no JavaScript.

Rendered with f-strings and :func:`html.escape` on every value (merchant-supplied text
included), because the page is tiny and must work in any browser and in HTML-only tests.
"""

from __future__ import annotations

from html import escape

from core.security import allow_inline_style
from providers.sandbox.engine import TEST_CARDS
from providers.sandbox.models import Payment, PaymentStatus, format_amount, result_url

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;padding:2rem}
main{max-width:28rem;margin:auto;background:#fff;border-radius:8px;padding:1.5rem 2rem;
box-shadow:0 1px 4px rgba(0,0,0,.1)}
.amount{font-size:2rem;font-weight:600;margin:.25rem 0 1rem}
label{display:block;margin:.75rem 0 .25rem}
input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;cursor:pointer}
.error{background:#fdecea;color:#611a15;padding:.5rem .75rem;border-radius:4px}
.note{color:#555;font-size:.85rem}
"""
allow_inline_style(_STYLE)  # the pages' one inline block, allowed by hash in the CSP


def _layout(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _summary(payment: Payment) -> str:
    lines = [
        '<p class="note">Paymesh sandbox: a test gateway. No real money moves.</p>',
        f"<h1>{escape(payment.description or 'Payment')}</h1>",
        f'<p class="amount" data-amount="{payment.amount}" '
        f'data-currency="{escape(payment.currency)}">'
        f"{escape(format_amount(payment.amount, payment.currency))}</p>",
    ]
    if payment.order_number:
        lines.append(f"<p>Order <strong>{escape(payment.order_number)}</strong></p>")
    return "".join(lines)


def checkout_page(payment: Payment, *, error: str | None = None, card_number: str = "") -> str:
    """The payment form, or the final state when the payment is no longer payable."""
    if payment.status is not PaymentStatus.REQUIRES_PAYMENT:
        return result_page(payment)
    cards = "".join(
        f"<li><code>{number}</code> — "
        f"{'succeeds' if status is PaymentStatus.SUCCEEDED else escape(code or '')}</li>"
        for number, (status, code, _message) in TEST_CARDS.items()
    )
    error_html = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    cancel = ""
    if payment.cancel_url:
        cancel = (
            f'<form method="post" action="/sandbox/checkout/{escape(payment.id)}/cancel">'
            '<button type="submit">Cancel and return</button></form>'
        )
    body = (
        _summary(payment)
        + error_html
        + f'<form method="post" action="/sandbox/checkout/{escape(payment.id)}">'
        '<label for="card_number">Card number</label>'
        f'<input id="card_number" name="card_number" inputmode="numeric" '
        f'autocomplete="cc-number" required value="{escape(card_number)}">'
        f'<button type="submit">Pay {escape(format_amount(payment.amount, payment.currency))}'
        "</button></form>"
        + cancel
        + f'<p class="note">Test cards:</p><ul class="note">{cards}</ul>'
    )
    return _layout("Sandbox checkout", body)


def result_page(payment: Payment) -> str:
    """Shown when there is no return URL to send the customer back to, or on revisit."""
    messages = {
        PaymentStatus.SUCCEEDED: "This payment has been paid. Thank you!",
        PaymentStatus.FAILED: f"This payment failed: {payment.failure_message or 'declined'}",
        PaymentStatus.CANCELLED: "This payment was cancelled.",
        PaymentStatus.REQUIRES_PAYMENT: "This payment is waiting for payment.",
    }
    back = ""
    if (url := result_url(payment)) is not None:
        back = f'<p><a href="{escape(url)}">Return to the merchant</a></p>'
    body = (
        _summary(payment) + f'<p class="status" data-status="{payment.status.value}">'
        f"{escape(messages[payment.status])}</p>" + back
    )
    return _layout("Sandbox payment", body)


def not_found_page(payment_id: str) -> str:
    return _layout(
        "Payment not found",
        f"<h1>Payment not found</h1><p>No sandbox payment <code>{escape(payment_id)}</code>.</p>",
    )
