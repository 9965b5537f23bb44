"""``earthlab quota``: your yearly usage of restricted imagery, as each centre's service counts it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from lab._errors import ConfigurationError, RestrictedDataError

DEFAULT_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
STAC_SUFFIX = "stac/"


def register(subparsers: Any) -> None:
    """Add the ``quota`` command."""
    parser = subparsers.add_parser(
        "quota",
        help="show your yearly usage of restricted imagery (km²) at each restricted centre",
        description="Ask the restricted-data service of each centre with restricted "
        "collections how many km² you used this year and how many remain. The service "
        "identifies you by your hub token.",
    )
    parser.add_argument(
        "--centres",
        dest="centres_file",
        help="centres file (default: $EARTHLAB_CENTRES; in a lab server, the lab's)",
    )
    parser.add_argument("--centre", help="only this centre")
    parser.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help=f"environment variable holding your hub token (default: {DEFAULT_TOKEN_ENV}, "
        "set in your lab server)",
    )
    parser.add_argument("--json", action="store_true", help="print the services' answers as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the usage at each restricted centre; 1 if a centre refused or failed."""
    from lab._centres import centres

    federation = centres(args.centres_file)
    chosen = [federation[args.centre]] if args.centre else list(federation.values())
    restricted = [c for c in chosen if c.restricted]
    if not restricted:
        raise ConfigurationError(
            f"no centre with restricted collections in {federation.source}"
            + (f" named {args.centre}" if args.centre else "")
        )
    for centre in restricted:
        quota_url(centre)  # a local catalogue has no service to ask: say so first
    token = os.environ.get(args.token_env)
    if not token:
        raise ConfigurationError(
            f"environment variable {args.token_env} holding your hub token is not set: in a "
            "lab server it is; elsewhere export a hub token (with the access scope of the "
            "restricted-data service) and pass --token-env NAME"
        )
    answers, status = {}, 0
    for centre in restricted:
        try:
            answers[centre.name] = usage(centre, token)
        except RestrictedDataError as exc:
            answers[centre.name] = {"centre": centre.name, "error": str(exc)}
            status = 1
    if args.json:
        json.dump(list(answers.values()), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for answer in answers.values():
            print(_line(answer))
    return status


def quota_url(centre: Any) -> str:
    """The usage endpoint of a centre's restricted-data service.

    Raises
    ------
    ConfigurationError
        If the centre's catalogue is not served by a restricted-data service (its ``href``
        is not ``.../stac/`` of a service).
    """
    href = centre.catalog.href
    if centre.catalog.kind != "stac-api" or not href.endswith(STAC_SUFFIX):
        raise ConfigurationError(
            f"centre {centre.name}: its catalogue {href} is not served by a restricted-data "
            "service, which counts usage; in the lab (earthlab hub up) the centres file of "
            "your server points at it"
        )
    return href[: -len(STAC_SUFFIX)] + "quota"


def usage(centre: Any, token: str, timeout: float | None = None) -> dict[str, Any]:
    """Ask a centre's restricted-data service for the token owner's usage this year.

    The request goes through the lab's HTTP session (``lab.http_session``): its retry policy,
    and ``timeout`` seconds (default: the ``http.timeout`` setting).

    Raises
    ------
    RestrictedDataError
        If the service refuses (the message says where to request access).
    ConfigurationError
        If the service cannot be reached.
    """
    import requests

    from lab._http import http_session

    url = quota_url(centre)
    try:
        with http_session(timeout=timeout) as session:
            response = session.get(url, headers={"Authorization": f"token {token}"})
    except requests.RequestException as exc:  # HttpError (no answer) or a malformed URL
        raise ConfigurationError(
            f"centre {centre.name}: cannot reach {url} ({exc}); is the lab running?"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {"description": response.text[:300]}
    if response.status_code in (401, 403):
        raise RestrictedDataError(str(body.get("description") or response.reason))
    if response.status_code != 200:
        raise ConfigurationError(
            f"centre {centre.name}: {url} answered {response.status_code}: "
            f"{body.get('description') or response.text[:300]}"
        )
    return dict(body)


def _line(answer: dict[str, Any]) -> str:
    if "error" in answer:
        return f"{answer['centre']}: {answer['error']}"
    return (
        f"{answer['centre']}: {answer['user']} used {answer['used_km2']:.3f} km² of "
        f"{answer['quota_km2']:.3f} km² in {answer['year']} "
        f"({answer['remaining_km2']:.3f} km² remaining; {answer['items']} item-day(s) charged)"
    )
