"""How people log in to the local lab: per-user password, or single sign-on with OpenID Connect.

With ``earthlab hub up --auth oidc`` the hub is a client of an OpenID Connect provider
(JupyterHub's ``GenericOAuthenticator``, configured from the provider's discovery document and
``auth.oidc`` of ``lab.yaml``): either the identity provider of a real deployment
(``--oidc-issuer URL``, its client secret in the environment variable ``lab.yaml`` names), or
a test provider the lab runs on loopback (``--oidc-users FILE``: oidc-provider-mock, a real
OpenID provider issuing signed ID tokens over the authorization-code flow, seeded with the
users and claims of FILE).

The test provider is for tests, demonstrations and workshops rehearsals only: its login page
lets anyone who reaches it sign in as any seeded user, and its ``PUT /users/<sub>`` changes
claims without authentication. It listens on loopback; ``hub up`` says so when it starts it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from lab import ConfigurationError

__all__ = [
    "AUTH_MODES",
    "discovery_url",
    "provider_command",
    "read_oidc_users",
]

AUTH_MODES = ("password", "oidc")
"""How users log in (``hub up --auth``)."""


def discovery_url(issuer: str) -> str:
    """The provider's OpenID discovery document."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def read_oidc_users(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read the users of the test provider: ``users:``, a list of claim mappings with ``sub``.

    Raises
    ------
    ConfigurationError
        When the file cannot be read, is not YAML of that shape, or a user has no ``sub`` or
        a ``sub`` twice; the message names the file and the user.
    """
    source = Path(path)
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(f"cannot read the users file {source}: {error}") from error
    users = document.get("users") if isinstance(document, dict) else None
    if not isinstance(users, list) or not users:
        raise ConfigurationError(
            f"{source}: expected `users:`, a list of users, each a mapping of claims with `sub` "
            "(e.g. sub, preferred_username, email, groups)"
        )
    seen: set[str] = set()
    for number, user in enumerate(users, start=1):
        sub = user.get("sub") if isinstance(user, dict) else None
        if not isinstance(sub, str) or not sub:
            raise ConfigurationError(f"{source}: user {number} has no `sub` (a non-empty string)")
        if sub in seen:
            raise ConfigurationError(f"{source}: user {sub!r} is listed twice")
        seen.add(sub)
    return [dict(u) for u in users]


def provider_command(
    bin_dir: str, ip: str, port: int, users: list[dict[str, Any]], token_max_age: int = 3600
) -> list[str]:
    """The command running the test provider on ``ip:port``, seeded with ``users``."""
    command = [
        str(Path(bin_dir) / "python"),
        "-m",
        "oidc_provider_mock",
        "--host",
        ip,
        "--port",
        str(port),
        "--token-max-age",
        str(token_max_age),
    ]
    for user in users:
        command += ["--user-claims", json.dumps(user, sort_keys=True)]
    return command
