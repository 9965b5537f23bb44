"""Accounts of the local lab's per-user passwords (``earthlab hub accounts``).

A trainer creates a workshop's accounts in one command, from names or a file of names, and
hands out the passwords; the hub checks them against ``secrets/accounts.json`` of the run
directory (``hub_config/earthlab_accounts.py``), read at each login.

Passwords are never stored: each is hashed with scrypt (a random 16-byte salt; n=2**14, r=8,
p=1, stored with the hash) and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from lab import ConfigurationError
from lab_server.deploy._layout import RunDir

__all__ = [
    "UNKNOWN_USER_HASH",
    "USER_NAME",
    "accounts_file",
    "add_accounts",
    "hash_password",
    "keep_owner_account",
    "owner_name",
    "read_accounts",
    "read_names",
    "remove_accounts",
    "verify_password",
    "write_accounts",
    "write_password_sheet",
]

USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""What a user name may be: lower-case letters, digits, ``.``, ``_``, ``-`` (a Unix name too)."""


SCRYPT = {"n": 2**14, "r": 8, "p": 1}
"""scrypt's cost parameters for new hashes (stored with each hash)."""

UNKNOWN_USER_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32
"""Hashed against when the user name is unknown (same cost, never matches a real hash)."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Return the stored form of ``password``: ``scrypt$n$r$p$<salt hex>$<hash hex>``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Say whether ``password`` matches ``stored`` (:func:`hash_password`), in constant time."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


def read_accounts(path: str | os.PathLike[str]) -> dict[str, str]:
    """The accounts file: ``{user name: stored hash}`` (empty when there is no file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    accounts = json.loads(text)
    if not isinstance(accounts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in accounts.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of user name -> password hash")
    return accounts


def write_accounts(path: str | os.PathLike[str], accounts: Mapping[str, str]) -> None:
    """Write the accounts file whole (0600), replacing the old one in one rename."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(accounts.items())), f, indent=1)
    os.chmod(partial, 0o600)
    os.replace(partial, target)


def accounts_file(run: RunDir) -> Path:
    """``secrets/accounts.json`` of the run directory."""
    return run.secrets_dir / "accounts.json"


def read_names(path: str | os.PathLike[str]) -> list[str]:
    """User names from a file: one per line, ``#`` comments and blank lines ignored.

    A CSV whose first column is the name works too (``name,email,...``); a header line whose
    first field is ``name``, ``user`` or ``username`` is skipped.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read the list of names {path}: {error}") from error
    names = []
    for line in lines:
        field = line.split("#", 1)[0].split(",", 1)[0].strip()
        if field and field.lower() not in ("name", "user", "username"):
            names.append(field)
    return names


def add_accounts(run: RunDir, names: Iterable[str], reset: bool = False) -> dict[str, str]:
    """Create accounts with new random passwords; return ``{name: password}``.

    Parameters
    ----------
    run
        The lab's run directory.
    names
        User names (:data:`USER_NAME`).
    reset
        Give existing accounts a new password instead of refusing them.

    Raises
    ------
    ConfigurationError
        Naming every bad or duplicated name, or every existing account (without ``reset``);
        nothing is written then.
    """
    wanted = list(names)
    if not wanted:
        raise ConfigurationError("no user name given: name the accounts, or --from FILE")
    bad = [n for n in wanted if not USER_NAME.match(n)]
    if bad:
        raise ConfigurationError(
            f"not a user name: {', '.join(map(repr, bad))}; use lower-case letters, digits, "
            "'.', '_' or '-' (at most 64, starting with a letter or digit)"
        )
    twice = sorted({n for n in wanted if wanted.count(n) > 1})
    if twice:
        raise ConfigurationError(f"named twice: {', '.join(twice)}")
    path = accounts_file(run)
    accounts = read_accounts(path)
    existing = [n for n in wanted if n in accounts]
    if existing and not reset:
        raise ConfigurationError(
            f"these accounts exist already: {', '.join(existing)}; give --reset to give them "
            "new passwords, or leave them out"
        )
    passwords = {name: secrets.token_urlsafe(12) for name in wanted}
    accounts.update({name: hash_password(pw) for name, pw in passwords.items()})
    run.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_accounts(path, accounts)
    return passwords


def remove_accounts(run: RunDir, names: Iterable[str]) -> list[str]:
    """Remove accounts (they can no longer log in); return those that existed."""
    path = accounts_file(run)
    accounts = read_accounts(path)
    removed = [n for n in names if n in accounts]
    for name in removed:
        del accounts[name]
    write_accounts(path, accounts)
    return removed


def write_password_sheet(path: str | os.PathLike[str], passwords: dict[str, str]) -> None:
    """Write ``user,password`` lines for the trainer (mode 0600, never group- or world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("user,password\n")
        for name, password in passwords.items():
            f.write(f"{name},{password}\n")
    os.chmod(path, 0o600)


def keep_owner_account(run: RunDir, owner: str, password: str) -> None:
    """Give the person running the lab an account with ``password`` (other accounts are kept)."""
    accounts = read_accounts(accounts_file(run))
    accounts[owner] = hash_password(password)
    write_accounts(accounts_file(run), accounts)


def owner_name() -> str:
    """The lab owner's user name: the Unix account running ``hub up`` (``owner`` if unusable)."""
    import getpass

    try:
        name = getpass.getuser().lower()
    except (KeyError, OSError):
        return "owner"
    return name if USER_NAME.match(name) else "owner"
