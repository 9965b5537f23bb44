"""Yearly quotas of restricted imagery, in km², and the SQLite ledger of what each user used.

The rule (see ``docs/federation.md``):

- an item costs the geodesic area of its footprint (its GeoJSON geometry on the WGS84
  ellipsoid), whatever part of it is read: the service sees byte ranges, not windows;
- it is charged once per user, item and UTC day, on the first asset read (GET) of that day:
  the many range requests of one load, other bands of the same scene, or a second load the
  same day cost nothing more;
- the quota is per calendar year (UTC); a user in several quota groups gets the largest;
- a read that would take the year's total over the quota is refused before any byte is sent,
  with the used and remaining km² in the message; an item already charged today stays
  readable.

The ledger is a SQLite file, so usage survives restarts of the service.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyproj import Geod

from lab import ConfigurationError

__all__ = ["Charge", "QuotaPolicy", "Usage", "UsageLedger", "footprint_km2"]

_GEOD = Geod(ellps="WGS84")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    user TEXT NOT NULL,
    collection TEXT NOT NULL,
    item TEXT NOT NULL,
    day TEXT NOT NULL,
    km2 REAL NOT NULL,
    charged_at TEXT NOT NULL,
    PRIMARY KEY (user, collection, item, day)
);
CREATE INDEX IF NOT EXISTS charges_by_user_day ON charges (user, day);
"""


def footprint_km2(geometry: Mapping[str, Any]) -> float:
    """Geodesic area of a GeoJSON (Multi)Polygon in lon/lat degrees, in km².

    Raises
    ------
    ConfigurationError
        If the geometry is not a polygon (an item without an area cannot be charged).
    """
    import shapely.geometry

    shape = shapely.geometry.shape(dict(geometry))
    if shape.geom_type not in ("Polygon", "MultiPolygon") or shape.is_empty:
        raise ConfigurationError(
            f"a restricted item needs a Polygon footprint to be charged, got {shape.geom_type}"
        )
    area, _ = _GEOD.geometry_area_perimeter(shape)
    return abs(area) / 1e6


@dataclass(frozen=True)
class QuotaPolicy:
    """Quotas of restricted imagery by hub group (``restricted`` section of ``lab.yaml``)."""

    quota_km2_per_year: Mapping[str, float] = field(default_factory=dict)
    """Yearly km² a user of each group may read."""
    signed_url_lifetime: float = 3600.0
    """Seconds a signed asset URL handed out in search results stays valid."""

    def __post_init__(self) -> None:
        for group, value in self.quota_km2_per_year.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(
                    f"restricted.quota_km2_per_year.{group} must be a number of km² >= 0, "
                    f"got {value!r}"
                )
        if not self.signed_url_lifetime > 0:
            raise ConfigurationError(
                "restricted.signed_url_lifetime must be a positive number of seconds, "
                f"got {self.signed_url_lifetime!r}"
            )

    @classmethod
    def from_policy(cls, policy: Mapping[str, Any]) -> QuotaPolicy:
        """Read the ``restricted`` section of the lab's policy (``hub_config/lab.yaml``).

        Raises
        ------
        ConfigurationError
            If the section is malformed (the message names the key).
        """
        section = policy.get("restricted") or {}
        if not isinstance(section, Mapping):
            raise ConfigurationError("lab.yaml: 'restricted' must be a mapping")
        unknown = sorted(set(section) - {"quota_km2_per_year", "signed_url_lifetime"})
        if unknown:
            raise ConfigurationError(
                f"lab.yaml: unknown key(s) restricted.{', restricted.'.join(unknown)}; "
                "known: quota_km2_per_year, signed_url_lifetime"
            )
        quotas = section.get("quota_km2_per_year") or {}
        if not isinstance(quotas, Mapping):
            raise ConfigurationError("lab.yaml: restricted.quota_km2_per_year must map groups")
        return cls(
            quota_km2_per_year=dict(quotas),
            signed_url_lifetime=float(section.get("signed_url_lifetime", 3600.0)),
        )

    def quota_for(self, groups: Iterable[str]) -> float | None:
        """The yearly quota of a user in ``groups`` (the largest), None if no group has one."""
        values = [self.quota_km2_per_year[g] for g in groups if g in self.quota_km2_per_year]
        return float(max(values)) if values else None


@dataclass(frozen=True)
class Usage:
    """What one user read this year."""

    user: str
    year: int
    used_km2: float
    items: int
    """Charges (item-days) this year."""
    charges: Sequence[Mapping[str, Any]] = ()
    """Each charge: day, collection, item, km2."""


@dataclass(frozen=True)
class Charge:
    """The answer of :meth:`UsageLedger.charge`."""

    allowed: bool
    charged: bool
    """Whether this read was charged now (False when already charged today, or refused)."""
    used_km2: float
    """Used this year after this read (before it, when refused)."""
    quota_km2: float


class UsageLedger:
    """The SQLite file of charges (one row per user, item and UTC day).

    Parameters
    ----------
    path
        The database file (created with its directory).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def usage(self, user: str, now: dt.datetime | None = None) -> Usage:
        """Return the user's usage in the current (UTC) year."""
        year = _utc(now).year
        with self._lock:
            rows = self._db.execute(
                "SELECT day, collection, item, km2 FROM charges "
                "WHERE user = ? AND day >= ? AND day < ? ORDER BY day, collection, item",
                (user, f"{year}-01-01", f"{year + 1}-01-01"),
            ).fetchall()
        charges = [{"day": d, "collection": c, "item": i, "km2": k} for d, c, i, k in rows]
        return Usage(user, year, sum(r[3] for r in rows), len(rows), charges)

    def charge(
        self,
        user: str,
        collection: str,
        item: str,
        km2: float,
        quota_km2: float,
        now: dt.datetime | None = None,
        *,
        dry_run: bool = False,
    ) -> Charge:
        """Charge a read of ``item`` to ``user`` unless it is over the quota.

        Parameters
        ----------
        user, collection, item
            Who reads what.
        km2
            The item's footprint area.
        quota_km2
            The user's yearly quota.
        now
            The time of the read (default: now, UTC).
        dry_run
            Only say whether the read would be allowed (HEAD requests).

        Returns
        -------
        Charge
            Whether the read is allowed and the year's total.
        """
        when = _utc(now)
        day, year = when.date().isoformat(), when.year
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seen = self._db.execute(
                    "SELECT 1 FROM charges WHERE user = ? AND collection = ? AND item = ? "
                    "AND day = ?",
                    (user, collection, item, day),
                ).fetchone()
                (used,) = self._db.execute(
                    "SELECT COALESCE(SUM(km2), 0) FROM charges "
                    "WHERE user = ? AND day >= ? AND day < ?",
                    (user, f"{year}-01-01", f"{year + 1}-01-01"),
                ).fetchone()
                if seen:
                    self._db.execute("COMMIT")
                    return Charge(True, False, used, quota_km2)
                if used + km2 > quota_km2 + 1e-9:
                    self._db.execute("COMMIT")
                    return Charge(False, False, used, quota_km2)
                if not dry_run:
                    self._db.execute(
                        "INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?)",
                        (user, collection, item, day, km2, when.isoformat()),
                    )
                    used += km2
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Charge(True, not dry_run, used, quota_km2)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC) if now.tzinfo else now.replace(tzinfo=dt.UTC)
