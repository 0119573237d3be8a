"""Provider adapters: turn one provider's webhook request into a verified TerminalEvent.

An adapter checks the request's authenticity with the terminal's stored secret and returns the
event, or ``None`` for a provider event type that carries no sale (acknowledged, nothing applied).
It raises :class:`AuthError` (401) or :class:`EventError` (422). To add SumUp or Square, write a
class with the same two members and add it to :func:`adapter_for` and :data:`PROVIDERS`; pairing stores its webhook secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from admin_web.terminals import signing
from admin_web.terminals.errors import AuthError, EventError
from admin_web.terminals.events import EARLIEST, LATEST, TerminalEvent, event_from_dict, parse_event
from smartshelf.core.jsonsafe import loads_bounded

MAX_STRIPE_DEPTH = 12


class TerminalAdapter(Protocol):
    provider: str
    """Name stored in the ledger's ``provider`` field and in the terminal record."""

    def read(self, *, body: bytes, headers: Mapping[str, str], secret: str, now: float,
             clock_synced: bool = True) -> TerminalEvent | None:
        """Verify and decode one request; None means "valid, but nothing to apply".

        ``clock_synced=False`` (the shelf's clock was never set since boot): a signed time outside
        the allowed window is reported as the shelf's clock not being set, not as the terminal's fault.
        """
        ...


class GenericAdapter:
    """The signed JSON format of :mod:`admin_web.terminals.events` (``X-Signature``)."""

    provider = "generic"

    def __init__(self, *, tolerance_s: int = signing.DEFAULT_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s

    def read(self, *, body: bytes, headers: Mapping[str, str], secret: str, now: float,
             clock_synced: bool = True) -> TerminalEvent:
        signing.verify(headers.get("X-Signature"), body, secret, now=now, tolerance_s=self.tolerance_s,
                       clock_synced=clock_synced)
        return parse_event(body)


class StripeAdapter:
    """Stripe Terminal webhooks, verified with ``stripe.Webhook.construct_event``.

    - ``payment_intent.succeeded`` -> sale. The PaymentIntent's ``metadata.lines`` holds the line items
      as a JSON string ``[{"sku": "A1", "qty": 1}]`` (set by the till when it creates the intent).
      Event id ``stripe:<payment intent id>``; amount ``amount_received``.
    - ``charge.refunded`` -> refund. A full refund puts back ``metadata.lines``; a partial one needs
      ``metadata.refund_lines`` (same format) on the charge, otherwise it is refused with 422 because
      the shelf cannot know which items came back. Event id ``stripe:<event id>``.
    - any other type -> None (acknowledged with 200 so Stripe does not retry).
    """

    provider = "stripe"
    SALE_TYPES = ("payment_intent.succeeded",)
    REFUND_TYPES = ("charge.refunded",)

    def __init__(self, *, tolerance_s: int = signing.DEFAULT_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s

    def read(self, *, body: bytes, headers: Mapping[str, str], secret: str, now: float,
             clock_synced: bool = True) -> TerminalEvent | None:
        import stripe  # lazy: the library is only needed when a Stripe webhook arrives

        try:
            signing.parse_stripe_header(headers.get("Stripe-Signature"))
        except AuthError as exc:
            raise AuthError(f"Stripe signature check failed: {exc}") from None
        payload = body.decode("utf-8", "replace")
        try:  # the signature first (the library's own check), then our bounded parse of the body
            stripe.WebhookSignature.verify_header(payload, headers.get("Stripe-Signature"), secret,
                                                  tolerance=self.tolerance_s)
        except stripe.SignatureVerificationError as exc:
            text = str(exc.user_message or exc)
            if not clock_synced and "tolerance" in text.lower():
                signed = _stripe_timestamp(headers.get("Stripe-Signature"))
                offset = now - signed if signed is not None else float("nan")
                raise AuthError(signing.clock_not_set_message(offset, self.tolerance_s)) from None
            raise AuthError(f"Stripe signature check failed: {text}") from None
        try:
            raw = loads_bounded(body, max_depth=MAX_STRIPE_DEPTH)  # stripe's json.loads has no depth bound
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventError(f"Stripe webhook body is not valid JSON: {exc}") from None
        return self.event_from_stripe(raw)

    def event_from_stripe(self, raw: Any) -> TerminalEvent | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise EventError("Stripe webhook body has no event type")
        kind = raw["type"]
        if kind not in self.SALE_TYPES + self.REFUND_TYPES:
            return None
        data = raw.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            raise EventError(f"Stripe {kind} event has no data.object")
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise EventError(f"Stripe {kind} event's metadata must be an object")
        created = obj.get("created") or raw.get("created")
        if isinstance(created, bool) or not isinstance(created, int):
            raise EventError(f"Stripe {kind} event has no created timestamp")
        if not EARLIEST.timestamp() <= created < LATEST.timestamp():
            raise EventError(f"Stripe {kind} created = {str(created)[:20]} is outside {EARLIEST.year}-{LATEST.year - 1}")
        when = datetime.fromtimestamp(created, UTC).isoformat()
        currency = str(obj.get("currency", "")).upper()
        if kind in self.SALE_TYPES:
            return event_from_dict(
                {
                    "id": f"stripe:{obj.get('id')}",
                    "type": "sale",
                    "lines": _metadata_lines(metadata, "lines", kind),
                    "amount": obj.get("amount_received", obj.get("amount")),
                    "currency": currency,
                    "time": when,
                }
            )
        fully = bool(obj.get("refunded")) or obj.get("amount_refunded") == obj.get("amount")
        if "refund_lines" in metadata:
            lines = _metadata_lines(metadata, "refund_lines", kind)
        elif fully:
            lines = _metadata_lines(metadata, "lines", kind)
        else:
            raise EventError(
                f"Stripe {kind} {obj.get('id')} is a partial refund without metadata.refund_lines; "
                "the shelf cannot tell which items came back"
            )
        return event_from_dict(
            {
                "id": f"stripe:{raw.get('id')}",
                "type": "refund",
                "lines": lines,
                "amount": obj.get("amount_refunded"),
                "currency": currency,
                "time": when,
            }
        )


def _metadata_lines(metadata: Any, key: str, kind: str) -> Any:
    if not isinstance(metadata, dict) or key not in metadata:
        raise EventError(f"Stripe {kind} event has no metadata.{key} (JSON list of {{sku, qty}})")
    try:
        return loads_bounded(metadata[key], max_depth=3)
    except (TypeError, ValueError):
        raise EventError(f"Stripe {kind} metadata.{key} is not a JSON list of {{sku, qty}}") from None


PROVIDERS: tuple[str, ...] = ("generic", "stripe")


def adapter_for(provider: str) -> TerminalAdapter:
    """The adapter of a provider name (one of PROVIDERS); ValueError lists the known ones."""
    if provider == "generic":
        return GenericAdapter()
    if provider == "stripe":
        return StripeAdapter()
    raise ValueError(f"unknown terminal provider {provider!r}; known: {', '.join(PROVIDERS)}")


def _stripe_timestamp(header: str | None) -> int | None:
    """The ``t=`` value of a Stripe-Signature header (None when absent or not a number)."""
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    return None
