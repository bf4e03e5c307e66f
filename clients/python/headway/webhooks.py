"""Verifying Headway webhook deliveries (standard library only).

Every delivery carries ``Headway-Signature: t=<unix seconds>,v1=<hex>``, the
HMAC-SHA256 of ``"<t>.<body>"`` under the webhook's secret; during a secret
rotation there is one ``v1=`` per valid secret. See docs/webhooks.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional, Union

#: How old (or how far in the future) a signature's ``t`` may be, seconds.
DEFAULT_TOLERANCE_SECONDS = 300


def verify_signature(
    secret: str,
    header: Optional[str],
    body: Union[bytes, str],
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: Optional[float] = None,
) -> bool:
    """Whether ``header`` (the ``Headway-Signature`` value) signs ``body`` with ``secret``.

    ``body`` is the raw request body exactly as received: parse the JSON only
    after verifying, since re-serializing it changes the bytes. A signature whose
    ``t`` is more than ``tolerance`` seconds from ``now`` (default: the current
    time) is refused, so that a recorded delivery cannot be replayed later.
    Compares in constant time.
    """
    if not header:
        return False
    if isinstance(body, str):
        body = body.encode("utf-8")
    t = None
    candidates = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == "v1":
            candidates.append(value)
    if t is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        return False
    expected = hmac.new(secret.encode("utf-8"), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)
