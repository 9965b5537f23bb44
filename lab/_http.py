"""One HTTP client stack: ``requests`` sessions with one retry policy, timeout and User-Agent.

Every HTTP request of the SDK and of the server side's blocking code goes through a session
made by :func:`http_session`: STAC API searches (pystac-client's ``StacApiIO`` is given one),
Hub'Eau downloads, ``earthlab quota`` and the readiness checks of ``earthlab hub up``. A session

- retries by one :class:`RetryPolicy`, read from the ``http.*`` settings (urllib3's ``Retry``
  underneath): no answer (connection refused or reset, timed out) and the statuses of
  ``http.retry_statuses`` (429, 502, 503, 504 by default) are tried again, with exponential
  backoff and a server's ``Retry-After`` capped at ``http.backoff_max``; another 4xx or a plain
  500 never is: another try would get the same answer. Only idempotent methods are retried on
  a status or after a read error (urllib3's rule): a POST is not sent twice by the session;
- waits ``http.timeout`` seconds for a connection or the next bytes when the caller gives no
  timeout;
- says who asks: ``User-Agent: earthlab/<version> python-requests/<version>``;
- calls the request hooks (:func:`add_request_hook`) with every request before sending it (to
  log, to add a header, in tests to see what was sent);
- raises :class:`HttpError`, a :class:`~lab.EarthLabError` (and a
  ``requests.ConnectionError``, for code written against requests) naming the URL and what to
  do, when a server cannot be reached after the retries.

Where retries happen, so that they never multiply:

- plain requests (Hub'Eau, quota): the session retries each request;
- a centre's STAC API search: the federated catalogue retries the whole search, ``1 +
  catalog.retries`` times within the centre's time budget, and reports the attempts; it decides
  with the same policy (:meth:`RetryPolicy.retryable`) and waits its :meth:`RetryPolicy.backoff`,
  while the session it gives pystac-client makes one try per request;
- readiness checks poll: one try per check.

Why the servers' request handlers keep tornado's client: ``lab_server.stac_front``,
``lab_server.restricted`` and the hub's hooks (``hub_config/earthlab_hub.py``) answer requests
on tornado's event loop, where a blocking ``requests`` call would stall every other request of
the server; they forward one request to one upstream with ``tornado.httpclient`` and pass its
failure (502) to their client, whose session retries it by this policy.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from lab._config import config
from lab._errors import ConfigurationError, EarthLabError

__all__ = [
    "HttpError",
    "LabSession",
    "RequestHook",
    "RetryPolicy",
    "add_request_hook",
    "http_session",
    "remove_request_hook",
    "user_agent",
]

RequestHook = Callable[[requests.PreparedRequest], None]
"""A function called with each request a lab session sends, before it is sent."""
_hooks: list[RequestHook] = []
_hooks_lock = threading.Lock()


class HttpError(EarthLabError, requests.ConnectionError):
    """An HTTP server could not be reached, or did not answer, after the retry policy's tries.

    Also a ``requests.ConnectionError``, so that code catching requests' errors catches it.
    """


@dataclass(frozen=True)
class RetryPolicy:
    """Which failed HTTP requests are tried again, how often and after how long.

    Build it from the settings with :meth:`from_config`; change one field with
    ``dataclasses.replace(policy, total=0)``.
    """

    total: int
    """Further tries after the first (``http.retries``)."""
    backoff_factor: float
    """Wait before the n-th further try: ``backoff_factor * 2 ** (n - 1)`` s, none before the
    first (``http.backoff_factor``)."""
    backoff_max: float
    """Longest wait, in seconds; also caps a server's ``Retry-After`` (``http.backoff_max``)."""
    statuses: tuple[int, ...]
    """Statuses tried again (``http.retry_statuses``); never another 4xx nor a plain 500."""

    def __post_init__(self) -> None:
        fields = {
            "total": ("http.retries", self.total),
            "backoff_factor": ("http.backoff_factor", self.backoff_factor),
            "backoff_max": ("http.backoff_max", self.backoff_max),
            "statuses": ("http.retry_statuses", self.statuses),
        }
        settings = {s.key: s for s in config.settings}
        for name, (key, value) in fields.items():
            try:
                checked = settings[key].check(value)
            except ValueError as exc:
                raise ConfigurationError(
                    f"RetryPolicy.{name} (setting {key}) {exc}, got {value!r}"
                ) from None
            object.__setattr__(self, name, checked)

    @classmethod
    def from_config(cls) -> RetryPolicy:
        """Return the policy the ``http.*`` settings describe.

        Raises
        ------
        ConfigurationError
            If a setting is invalid (the message names it and where it was set).
        """
        http = config.get("http")
        return cls(
            total=http["retries"],
            backoff_factor=http["backoff_factor"],
            backoff_max=http["backoff_max"],
            statuses=http["retry_statuses"],
        )

    def backoff(self, retry: int) -> float:
        """Seconds to wait before the ``retry``-th further try (1 for the first), as urllib3."""
        if retry <= 1:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (retry - 1)))

    def retryable(self, failure: BaseException | int) -> bool:
        """Say whether a failure (an exception or an HTTP status) is worth another try.

        An answer is retried when its status is one of :attr:`statuses`; no answer at all
        (connection refused or reset, time-out) always is; a lab error that is not an
        :class:`HttpError` (a refusal, a malformed catalogue) never is.
        """
        if isinstance(failure, int):
            return failure in self.statuses
        status = _status_of(failure)
        if status is not None:
            return status in self.statuses
        if isinstance(failure, EarthLabError) and not isinstance(failure, HttpError):
            return False
        if is_tls_failure(failure):  # another try fails the same way
            return False
        return isinstance(
            failure, ConnectionError | TimeoutError | requests.ConnectionError | requests.Timeout
        )

    def urllib3_retry(self) -> Retry:
        """Return the ``urllib3`` ``Retry`` that applies this policy to each request."""
        return _Retry(
            total=self.total,
            other=0,  # TLS and protocol failures: another try fails the same way
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            status_forcelist=self.statuses,
            raise_on_status=False,  # the last answer is returned, its status for the caller
            respect_retry_after_header=True,
        )


class _Retry(Retry):
    """urllib3's ``Retry`` with a server's ``Retry-After`` capped at ``backoff_max``."""

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.backoff_max)


class LabSession(requests.Session):
    """A ``requests.Session`` with the lab's retry policy, default timeout, User-Agent and hooks.

    Made by :func:`http_session`; use it as a ``requests.Session`` (``with`` closes it).
    """

    def __init__(self, retry: RetryPolicy, timeout: float):
        super().__init__()
        self.retry_policy = retry
        """The retry policy of every request."""
        self.timeout = timeout
        """Seconds allowed when a request gives no ``timeout``."""
        self.headers["User-Agent"] = user_agent()
        adapter = HTTPAdapter(max_retries=retry.urllib3_retry())
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send a prepared request: hooks first, then the request with the lab's policy.

        Raises
        ------
        HttpError
            If the server could not be reached or did not answer, after the retries.
        """
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        with _hooks_lock:
            hooks = tuple(_hooks)
        for hook in hooks:
            hook(request)
        try:
            return super().send(request, **kwargs)
        except HttpError:
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            if is_tls_failure(exc):
                raise HttpError(
                    f"TLS handshake with {request.url} failed: {_reason(exc)}; an https URL "
                    "to a plain-HTTP server, or a certificate the system does not trust: check "
                    "the URL's scheme and port (not retried)"
                ) from exc
            raise HttpError(_no_answer(request.url, exc, self.retry_policy)) from exc

    def __repr__(self) -> str:
        return f"<LabSession retries={self.retry_policy.total} timeout={self.timeout:g}s>"


def http_session(*, retry: RetryPolicy | None = None, timeout: float | None = None) -> LabSession:
    """Return a new HTTP session of the lab (close it, or use it in a ``with`` block).

    Parameters
    ----------
    retry
        The retry policy (default: :meth:`RetryPolicy.from_config`, the ``http.*`` settings).
    timeout
        Seconds for requests that give none (default: the ``http.timeout`` setting).

    Returns
    -------
    LabSession
        A ``requests.Session``: retries by the policy, default timeout, ``User-Agent`` naming
        earthlab's version, request hooks, :class:`HttpError` when no answer comes.

    Raises
    ------
    ConfigurationError
        If a setting or argument is invalid.
    """
    policy = retry if retry is not None else RetryPolicy.from_config()
    if timeout is None:
        seconds = float(config.get("http.timeout"))
    elif isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    else:
        seconds = float(timeout)
    return LabSession(policy, seconds)


def add_request_hook(hook: RequestHook) -> None:
    """Call ``hook(request)`` with every request of every lab session, before it is sent.

    ``request`` is the ``requests.PreparedRequest`` (method, URL, headers, body); a hook may
    change its headers. Hooks run in the sending thread, in the order they were added; an
    error in a hook fails the request.
    """
    with _hooks_lock:
        _hooks.append(hook)


def remove_request_hook(hook: RequestHook) -> None:
    """Stop calling a hook added by :func:`add_request_hook` (nothing if it is not there)."""
    with _hooks_lock:
        if hook in _hooks:
            _hooks.remove(hook)


@lru_cache(maxsize=1)
def user_agent() -> str:
    """Return the ``User-Agent`` of the lab's requests: ``earthlab/<version> python-requests/<v>``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("earthlab")
    except PackageNotFoundError:
        mine = "unknown"
    return f"earthlab/{mine} python-requests/{requests.__version__}"


def _status_of(failure: BaseException) -> int | None:
    status = getattr(failure, "status_code", None)
    if status is None:
        status = getattr(getattr(failure, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _no_answer(url: str | None, exc: Exception, policy: RetryPolicy) -> str:
    tries = (
        f"after {policy.total} retr{'y' if policy.total == 1 else 'ies'}"
        if policy.total
        else "no retry configured"
    )
    return (
        f"no answer from {url}: {_reason(exc)} ({tries}); check the address and that the "
        "server runs, or raise the settings http.retries / http.timeout "
        "(docs/configuration.md)"
    )


def _reason(exc: Exception) -> str:
    """The root cause of a requests error, in a few words (``[Errno 111] Connection refused``)."""
    inner: Any = exc.args[0] if exc.args else exc
    inner = getattr(inner, "reason", inner)  # urllib3's MaxRetryError
    text = str(inner)
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if found:
        return found.group(0).strip()
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return "timed out"
    return text


def is_tls_failure(failure: BaseException) -> bool:
    """Whether a failure, or one it was raised from, is a TLS (SSL) error.

    A TLS failure (an ``https`` URL to a plain-HTTP server, an untrusted certificate, a
    protocol mismatch) fails the same way on every try: it is never retried.
    """
    import ssl

    seen: set[int] = set()
    current: BaseException | None = failure
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | requests.exceptions.SSLError):
            return True
        current = current.__cause__ or current.__context__
    return False
