"""How Steward signs a webhook, and how a receiver verifies it.

Every webhook request carries two headers:

- ``Steward-Timestamp``: the Unix time (seconds) when it was sent;
- ``Steward-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the channel's secret, of
  the timestamp, a full stop and the exact request body bytes: ``f"{timestamp}.{body}"``.

A receiver recomputes the HMAC over the body it received, compares it in constant time, and
refuses a timestamp more than five minutes away from its own clock (a replayed request).
Hand-written because apprise's webhook plugins send fixed headers; a signature per message needs
the body, which only the sender has. The standard library's ``hmac`` does the cryptography.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "Steward-Timestamp"
SIGNATURE_HEADER = "Steward-Signature"
TOLERANCE_S = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Steward-Signature`` header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signed: str,
    *,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """Whether a request with these headers and body came from a sender holding ``secret``."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, sent, body), signed)
