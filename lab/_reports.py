"""What each centre answered: the per-centre report of a federated search or collection search.

Shared by ``lab._catalog`` (items) and ``lab._collections`` (datasets), so that both give the
same report, printed the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pystac

CENTRE_PROPERTY = "earthlab:centre"
"""Where each item (``properties``) or collection (``extra_fields``) names its centre."""


@dataclass(frozen=True)
class CentreReport:
    """What one centre answered to a federated search."""

    centre: str
    """Centre name."""
    status: str
    """``ok``, ``missing`` (failed or timed out), ``restricted`` (not allowed) or ``skipped``
    (the centre declares it holds none of the collections asked for, or is a CSW catalogue,
    which holds no items)."""
    matched: int | None = None
    """Matches the centre reported (or found), when known."""
    returned: int = 0
    """Items (or collections) it returned."""
    kept: int = 0
    """Items kept in the merged result (after de-duplication and the limit)."""
    duplicates: int = 0
    """Items dropped because a preferred centre returned the same item."""
    error: str = ""
    """Why the centre is missing or restricted (empty when ok)."""
    note: str = ""
    """Anything else worth knowing (fallbacks used, retries)."""
    attempts: int = 1
    """Tries made (1 + retries used)."""
    seconds: float = 0.0
    """Wall time spent on this centre."""


@dataclass(frozen=True)
class CentreCollections:
    """What one centre answered to a collection search (``lab._collections``)."""

    collections: list[pystac.Collection]
    """Matching collections."""
    matched: int | None = None
    """Matches the centre reported (may exceed ``len(collections)`` when paging was cut)."""
    note: str = ""
    """How it was searched (server-side, filtered by the lab...)."""


class FederatedAnswer(ABC):
    """The per-centre side of a federated answer: ``SearchResult`` and ``CollectionsResult``.

    Subclasses hold what was found (``__len__``) and name it (:attr:`found`).
    """

    found: ClassVar[str] = "items"
    """What the answer holds, for :meth:`describe`."""

    def __init__(self, federation: dict[str, CentreReport], query: Any):
        self.federation = federation
        """Per-centre reports, by centre name."""
        self.query = query
        """The normalised query."""

    @abstractmethod
    def __len__(self) -> int:
        """How many items or collections were found."""

    @property
    def missing(self) -> dict[str, str]:
        """Centres that could not be searched, with the reason."""
        return {n: r.error for n, r in self.federation.items() if r.status == "missing"}

    @property
    def restricted(self) -> dict[str, str]:
        """Centres that refused (not allowed), with where to request access."""
        return {n: r.error for n, r in self.federation.items() if r.status == "restricted"}

    @property
    def federation_missing(self) -> list[str]:
        """Centres whose answers may be missing from the result, in federation order.

        The openEO federation extension's ``federation:missing``: every centre that was asked
        but did not answer (``missing``) or refused (``restricted``), so the result may be
        incomplete. Centres ``skipped`` because they hold none of the collections asked for
        are not listed: nothing is missing from them.
        """
        return [n for n, r in self.federation.items() if r.status in ("missing", "restricted")]

    def federation_table(self) -> list[dict[str, Any]]:
        """Return the per-centre report as a list of plain dicts (e.g. for pandas)."""
        return [asdict(r) for r in self.federation.values()]

    def describe(self) -> str:
        """Return the federation report as readable text."""
        head = f"{len(self)} {self.found} for {self.query.describe()}"
        return describe_reports(head, self.federation, self.federation_missing)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def describe_reports(head: str, federation: dict[str, CentreReport], missing: list[str]) -> str:
    """The per-centre report as aligned text under ``head`` (items or collections)."""
    lines = [head]
    if missing:
        lines[0] += f" (incomplete: {', '.join(missing)} not searched)"
    reports = list(federation.values())
    name_width = max([12, *(len(r.centre) for r in reports)])
    matched = ["?" if r.matched is None else str(r.matched) for r in reports]
    matched_width = max([5, *(len(m) for m in matched)])
    kept_width = max([5, *(len(str(r.kept)) for r in reports)])
    for r, count in zip(reports, matched, strict=True):
        detail = r.error or r.note
        lines.append(
            f"  {r.centre:<{name_width}} {r.status:<10} matched={count:<{matched_width}} "
            f"kept={r.kept:<{kept_width}} {r.seconds:6.2f}s  {detail}".rstrip()
        )
    return "\n".join(lines)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its repr when empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
