"""The one redaction function for text that came from outside (a provider's error
message, a proxy's error page) before it is kept, logged or returned.

A provider, or a proxy in front of it, may echo the request's credentials in an error
body. :func:`redact` masks what looks like a key (``sk_live_…``, ``sk_test_…``,
``sk_sandbox_…``, ``FLWSECK…``, ``polar_oat_…``, ``whsec_…``, ``Bearer …`` tokens, long tokens after
``key``/``secret``/``token``/``password``) and, exactly, the secrets the caller names
(the tenant's own configured keys, whatever their shape).

It lives in ``providers`` because the key shapes are the gateways' own vocabulary;
tenant code calls it on whatever provider text it keeps, logs or returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
#: Secrets shorter than this are not masked by value (masking "1" would garble text);
#: no real provider key is this short.
MIN_SECRET_LENGTH = 6

_PATTERNS = re.compile(
    r"""
    \b(?:sk|rk|pk)_(?:live|test|sandbox)_[A-Za-z0-9_\-]{4,}     # Stripe / Paystack / sandbox
    | \bFLW(?:SECK|PUBK)(?:_TEST)?-?[A-Za-z0-9_\-]{4,}            # Flutterwave
    | \bpolar_(?:oat|at|pat|rt)_[A-Za-z0-9_\-]{4,}                  # Polar access tokens
    | \bwhsec_[A-Za-z0-9_\-+/=]{4,}                              # webhook signing secrets
    | (?<=Bearer\s)[^\s"',;]+                                    # Authorization values
    | (?<=bearer\s)[^\s"',;]+
    """,
    re.VERBOSE,
)
#: ``api_key=…``, ``"secret": "…"``, ``token: …`` followed by a long hex/base64 token.
_NAMED = re.compile(
    r"""(?i)((?:key|secret|token|password|authorization)["']?\s*[:=]?\s*["']?)"""
    r"""([A-Za-z0-9_\-+/=.]{16,})"""
)


def redact(text: str | None, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with key-shaped strings and every one of ``secrets`` masked."""
    if not text:
        return text or ""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _PATTERNS.sub(MASK, text)
    return _NAMED.sub(lambda m: m.group(1) + MASK, text)
