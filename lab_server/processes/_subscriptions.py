"""Regular production: a process run on a schedule, or each time new items are catalogued.

A subscription is a user's execute request (process and inputs, checked like any) with a
trigger:

``{"every": seconds}``
    run every so many seconds (at least the service's ``min_interval``);
``{"new_items": {"collections": [...], "bbox": [...], "datetime": "..."}}``
    run when the federated catalogue (the service's centres file) finds items of that search
    that it did not find at the previous check: e.g. a ``cube-build`` into the same target
    extends the cube with each new scene of its tile (the build is incremental and idempotent).

Every subscription runs once when it is made (its product exists from the start), then at each
trigger; its runs are ordinary asynchronous jobs of its owner (``GET jobs?subscription=``
is not needed: each subscription lists its jobs). :class:`Subscriptions` keeps them in the job
database and :meth:`Subscriptions.tick` (called every ``poll`` seconds by the service, off its
event loop) starts the jobs that are due. A search that fails is recorded in the subscription's
``message`` and tried again at the next tick; nothing is run on a partial answer (a centre
that failed could hide items that are not new).
"""

from __future__ import annotations

import builtins
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from lab import EarthLabError
from lab_server.processes._database import column
from lab_server.processes._store import JobStore, now

__all__ = ["SubscriptionError", "Subscriptions"]

log = logging.getLogger("earthlab.processes")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    process_id TEXT NOT NULL,
    inputs TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    next_run DOUBLE PRECISION,
    seen TEXT NOT NULL DEFAULT '[]',
    jobs TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS subscriptions_user ON subscriptions ("user", created);
"""


class SubscriptionError(EarthLabError, ValueError):
    """A subscription request is not valid, or names no subscription of the caller."""


Submit = Callable[[str, str, dict[str, Any]], str]
"""``submit(user, process_id, inputs) -> job id``: starts an asynchronous job."""
Search = Callable[[Mapping[str, Any]], list[str]]
"""``search(query) -> item ids`` over the whole federation; raises if any centre failed."""


class Subscriptions:
    """Users' subscriptions, in the job database; :meth:`tick` starts what is due.

    Parameters
    ----------
    store : JobStore
        The job database (the subscriptions get their own table).
    submit : callable
        ``submit(user, process_id, inputs) -> job id``.
    search : callable
        ``search({"collections", "bbox", "datetime"}) -> [item id, ...]``: the federated
        search; it raises when the answer is incomplete.
    min_interval : float
        The shortest ``every`` accepted, in seconds.
    max_per_user : int
        Active subscriptions one user may have (each runs jobs on its own).
    clock : callable
        Seconds since the epoch (tests give their own).
    """

    def __init__(
        self,
        store: JobStore,
        submit: Submit,
        search: Search,
        min_interval: float = 60.0,
        max_per_user: int = 10,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.submit = submit
        self.search = search
        self.min_interval = min_interval
        self.max_per_user = max_per_user
        self.clock = clock
        with store._db() as db:
            db.executescript(_SCHEMA)

    # --- requests -------------------------------------------------------------------------

    def check_trigger(self, trigger: Any) -> dict[str, Any]:
        """The trigger, validated (see the module's docstring).

        Raises
        ------
        SubscriptionError
            Saying what a valid trigger looks like.
        """
        example = (
            'give {"every": seconds} or {"new_items": {"collections": [...], "bbox": '
            '[w, s, e, n], "datetime": "start/end"}}'
        )
        if not isinstance(trigger, Mapping) or len(trigger) != 1:
            raise SubscriptionError(f"a subscription needs one trigger: {example}")
        if "every" in trigger:
            every = trigger["every"]
            if isinstance(every, bool) or not isinstance(every, int | float):
                raise SubscriptionError(f"'every' is a number of seconds, not {every!r}")
            if every < self.min_interval:
                raise SubscriptionError(
                    f"'every' must be at least {self.min_interval:g} s on this lab, not {every:g}"
                )
            return {"every": float(every)}
        if "new_items" in trigger:
            query = trigger["new_items"]
            if not isinstance(query, Mapping) or not query.get("collections"):
                raise SubscriptionError(
                    "'new_items' is a search with at least its collections: "
                    '{"collections": ["sentinel-2-l2a"], "bbox": [...]}'
                )
            unknown = sorted(set(query) - {"collections", "bbox", "datetime"})
            if unknown:
                raise SubscriptionError(
                    f"'new_items' takes collections, bbox and datetime, not {unknown}"
                )
            from lab import ConfigurationError, SearchQuery

            try:
                SearchQuery.build(
                    collections=query["collections"],
                    bbox=query.get("bbox"),
                    datetime=query.get("datetime"),
                )
            except ConfigurationError as exc:
                raise SubscriptionError(f"'new_items': {exc}") from None
            return {"new_items": dict(query)}
        raise SubscriptionError(f"unknown trigger {sorted(trigger)}: {example}")

    def subscribe(
        self, user: str, process_id: str, inputs: dict[str, Any], trigger: Any
    ) -> dict[str, Any]:
        """Record a subscription (inputs already checked) and run it once now; the record.

        For ``new_items``, the items found now are the baseline: later checks run the process
        when others appear.

        Raises
        ------
        SubscriptionError
            The trigger is invalid, or the first search fails (nothing is recorded).
        """
        trigger = self.check_trigger(trigger)
        active = [s for s in self.list(user) if s["status"] == "active"]
        if len(active) >= self.max_per_user:
            raise SubscriptionError(
                f"you have {len(active)} active subscriptions, the most this lab allows: "
                "cancel one first (earthlab process subscriptions, then unsubscribe)"
            )
        seen: list[str] = []
        if "new_items" in trigger:
            try:
                seen = sorted(self.search(trigger["new_items"]))
            except Exception as exc:
                raise SubscriptionError(
                    f"the search of the subscription failed, so nothing was subscribed: {exc}"
                ) from None
        sub_id = uuid.uuid4().hex
        stamp = self.clock()
        record = {
            "id": sub_id,
            "user": user,
            "process_id": process_id,
            "inputs": json.dumps(inputs),
            "trigger": json.dumps(trigger),
            "status": "active",
            "message": "",
            "created": now(),
            "next_run": stamp + trigger["every"] if "every" in trigger else None,
            "seen": json.dumps(seen),
            "jobs": "[]",
        }
        with self.store._db() as db:
            db.execute(
                f"INSERT INTO subscriptions ({', '.join(map(column, record))}) "
                f"VALUES ({', '.join('?' * len(record))})",
                list(record.values()),
            )
        known = f"subscribed with {len(seen)} items known; " if "new_items" in trigger else ""
        self._run(sub_id, f"{known}first run")
        return self.get(sub_id, user)

    # --- reading and cancelling -------------------------------------------------------------

    @staticmethod
    def _record(row: Any) -> dict[str, Any]:
        record = dict(row)
        for key in ("inputs", "trigger", "seen", "jobs"):
            record[key] = json.loads(record[key])
        return record

    def get(self, sub_id: str, user: str | None = None) -> dict[str, Any]:
        """One subscription of the user (``None``: anyone's).

        Raises
        ------
        SubscriptionError
            None of that id is the user's.
        """
        with self.store._db() as db:
            row = db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)).fetchone()
        if row is None or (user is not None and row["user"] != user):
            raise SubscriptionError(
                f"you have no subscription {sub_id}: list yours (GET subscriptions)"
            )
        return self._record(row)

    def list(self, user: str) -> builtins.list[dict[str, Any]]:
        """The user's subscriptions, newest first (cancelled ones too)."""
        with self.store._db() as db:
            rows = db.execute(
                'SELECT * FROM subscriptions WHERE "user" = ? ORDER BY created DESC, id', (user,)
            ).fetchall()
        return [self._record(r) for r in rows]

    def cancel(self, sub_id: str, user: str) -> dict[str, Any]:
        """Stop the subscription (its jobs already started go on); the record."""
        self.get(sub_id, user)
        self._update(sub_id, status="cancelled", message="cancelled by its owner", next_run=None)
        return self.get(sub_id, user)

    def _update(self, sub_id: str, **fields: Any) -> None:
        for key in ("seen", "jobs"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        with self.store._db() as db:
            db.execute(
                f"UPDATE subscriptions SET {', '.join(f'{column(k)} = ?' for k in fields)} "
                "WHERE id = ?",
                [*fields.values(), sub_id],
            )

    # --- the clock ------------------------------------------------------------------------

    def _run(self, sub_id: str, why: str) -> str:
        sub = self.get(sub_id)
        job_id = self.submit(sub["user"], sub["process_id"], sub["inputs"])
        self._update(sub_id, jobs=[*sub["jobs"], job_id], message=f"{why}: job {job_id}")
        log.info("subscription %s of %s: %s, job %s", sub_id, sub["user"], why, job_id)
        return job_id

    def tick(self) -> builtins.list[str]:
        """Start the jobs that are due (schedules passed, new items found); their ids."""
        started: builtins.list[str] = []
        with self.store._db() as db:
            active = [
                self._record(r)
                for r in db.execute(
                    "SELECT * FROM subscriptions WHERE status = 'active'"
                ).fetchall()
            ]
        for sub in active:
            try:
                started.extend(self._check(sub))
            except Exception as exc:  # one failing subscription does not stop the others
                log.warning("subscription %s: check failed: %s", sub["id"], exc)
                self._update(sub["id"], message=f"last check failed (tried again): {exc}")
        return started

    def _check(self, sub: dict[str, Any]) -> builtins.list[str]:
        trigger = sub["trigger"]
        if "every" in trigger:
            clock = self.clock()
            if sub["next_run"] is None or clock < sub["next_run"]:
                return []
            # the next run after now, on the subscription's own cadence (none piled up)
            periods = int((clock - sub["next_run"]) // trigger["every"]) + 1
            self._update(sub["id"], next_run=sub["next_run"] + periods * trigger["every"])
            return [self._run(sub["id"], "scheduled run")]
        found = set(self.search(trigger["new_items"]))
        new = sorted(found - set(sub["seen"]))
        if not new:
            return []
        self._update(sub["id"], seen=sorted(found | set(sub["seen"])))
        shown = ", ".join(new[:3]) + (f" and {len(new) - 3} more" if len(new) > 3 else "")
        return [self._run(sub["id"], f"{len(new)} new item(s): {shown}")]


def federated_search(query: Mapping[str, Any]) -> list[str]:
    """Ids (``centre/collection/id``) of every item the federation finds for ``query``.

    Raises
    ------
    lab.CatalogError
        Some centre did not answer completely: new items could hide there.
    """
    import lab

    result = lab.catalog().search(
        collections=query["collections"], bbox=query.get("bbox"), datetime=query.get("datetime")
    )
    if result.federation_missing:
        raise lab.CatalogError(
            "the federated search is incomplete: "
            + ", ".join(f"{n}: {result.federation[n].status}" for n in result.federation_missing)
        )
    return [
        f"{item.properties.get('earthlab:centre')}/{item.collection_id}/{item.id}"
        for item in result
    ]
