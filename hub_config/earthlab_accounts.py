"""The hub's per-user password login for the local lab (no shared password).

:class:`LabPasswordAuthenticator` checks a user's password against the accounts file of the
run directory, ``secrets/accounts.json`` (mode 0600): ``{"user": "scrypt$n$r$p$<salt>$<hash>"}``
(``lab_server.deploy._accounts``, ``earthlab hub accounts``). The file is read at each login,
so accounts created while the lab runs can log in at once, and a removed account cannot.
Passwords are compared in constant time; an unknown user name costs the same hash, so that
timing does not tell which accounts exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from lab_server.deploy._accounts import UNKNOWN_USER_HASH, read_accounts, verify_password


class LabPasswordAuthenticator(Authenticator):
    """Log users in with their own password, from the lab's accounts file."""

    accounts_file = Unicode(
        "",
        help="The accounts file (secrets/accounts.json of the run directory).",
        config=True,
    )

    def check_allowed(self, username: str, authentication: Any = None) -> bool:
        """Anyone with an account (authentication already checked the password)."""
        return username in read_accounts(self.accounts_file)

    async def authenticate(self, handler: Any, data: Mapping[str, str]) -> str | None:
        """The user name when the password matches its account, else None (login refused)."""
        username = self.normalize_username(str(data.get("username", "")))
        password = str(data.get("password", ""))
        stored = read_accounts(self.accounts_file).get(username)
        matches = verify_password(password, stored or UNKNOWN_USER_HASH)
        if stored is None or not matches:
            self.log.warning("Failed login for %r", username)
            return None
        return username
