"""Run stac-api-validator offline: schemas from tests/data/stac-schemas/, nothing else leaves loopback.

Usage (what tests/test_stac_validation.py runs, in a subprocess)::

    python tests/stac_api_validator_offline.py --root-url http://127.0.0.1:PORT/ --conformance core

stac-api-validator, stac-validator, stac-check and pystac fetch the JSON schemas a STAC
document names (``schemas.stacspec.org``, ``stac-extensions.github.io``, ...) with ``requests``
and ``urllib``. This wrapper answers those requests from the stored copies
(``stac_schemas.local_schema``), lets requests to loopback through (the API under test and its
assets), and refuses every other URL with a connection error naming it, also printed on
standard error as ``offline: refused <url>``, so that a schema missing from the store shows
up instead of being downloaded. The test session's network guard does not reach subprocesses;
this does.
"""

from __future__ import annotations

import email.message
import io
import ipaddress
import sys
import urllib.error
import urllib.request
import urllib.response
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from stac_api_validator.__main__ import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stac_schemas import local_schema

REFUSED = "offline: refused"


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(url: str) -> str:
    message = f"{REFUSED} {url} (not loopback, not in tests/data/stac-schemas)"
    print(message, file=sys.stderr, flush=True)
    return message


_send = requests.adapters.HTTPAdapter.send


def _offline_send(
    self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any
) -> requests.Response:
    url = request.url or ""
    if _loopback(url):
        return _send(self, request, **kwargs)
    path = local_schema(url)
    if path is None:
        raise requests.ConnectionError(_refuse(url), request=request)
    response = requests.Response()
    response.status_code = 200
    response._content = path.read_bytes()
    response.headers["Content-Type"] = "application/json"
    response.url = url
    response.request = request
    response.encoding = "utf-8"
    return response


class _OfflineHandler(urllib.request.BaseHandler):
    """``urllib`` handler answering stored schemas and refusing other non-loopback URLs."""

    handler_order = 100  # before the default HTTP(S) handlers

    def _open(self, request: urllib.request.Request) -> Any:
        url = request.full_url
        if _loopback(url):
            return None  # the default handler opens it
        path = local_schema(url)
        if path is None:
            raise urllib.error.URLError(_refuse(url))
        headers = email.message.Message()
        headers["Content-Type"] = "application/json"
        response = urllib.response.addinfourl(io.BytesIO(path.read_bytes()), headers, url, 200)
        response.msg = "OK"  # what the HTTP response processor reads
        return response

    http_open = _open
    https_open = _open


def install() -> None:
    """Route ``requests`` and ``urllib`` through the stored schemas and loopback only."""
    requests.adapters.HTTPAdapter.send = _offline_send  # type: ignore[method-assign]
    urllib.request.install_opener(urllib.request.build_opener(_OfflineHandler()))


if __name__ == "__main__":
    install()
    main(prog_name="stac-api-validator")
