"""Signed asset URLs: what a search hands out, so that any reader (GDAL, dask workers) can load.

Search results of a restricted catalogue carry asset URLs signed for the caller: HMAC-SHA256 of
the user, the expiry time and the asset path under a key only the service knows. A reader needs
no token (workers on a gateway have none); the service still checks, on every read, that the
signer is a member of the group and has quota left, and charges the reads to them. A URL
expires after ``restricted.signed_url_lifetime`` seconds: search again for fresh ones.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

__all__ = ["sign_url", "verify"]


def _signature(key: bytes, user: str, path: str, expires: int) -> str:
    message = f"{user}\n{expires}\n{path}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_url(url: str, path: str, key: bytes, user: str, lifetime: float) -> str:
    """Return ``url`` with ``user``, ``expires`` and ``signature`` query parameters.

    Parameters
    ----------
    url
        The asset URL (without query).
    path
        The asset path the signature covers (relative to the service's asset root).
    key
        The service's signing key.
    user
        Who the reads will be charged to.
    lifetime
        Seconds the URL stays valid.
    """
    expires = int(time.time() + lifetime)
    query = urlencode(
        {"user": user, "expires": expires, "signature": _signature(key, user, path, expires)}
    )
    return f"{url}?{query}"


def verify(key: bytes, user: str, path: str, expires: str, signature: str) -> str | None:
    """Check a signed URL's parameters; return why it is refused, or None when valid."""
    try:
        deadline = int(expires)
    except ValueError:
        return "malformed expiry"
    if deadline < time.time():
        return "the signed URL expired: search again for fresh asset URLs"
    if not hmac.compare_digest(_signature(key, user, path, deadline), signature):
        return "invalid signature"
    return None
