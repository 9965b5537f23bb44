"""Reader of Hub'Eau "qualité des cours d'eau" (Naïades) JSON: ``analyse_pc`` joined to ``station_pc``.

API v1 and v2 responses share the fields used here (``code_station``, ``date_prelevement``,
``heure_prelevement``, ``code_parametre``, ``resultat``, ``symbole_unite``, ``code_remarque``,
``code_qualification``, ``limite_*``); v2 analyses also carry ``longitude``/``latitude``, used when
the station is not in the ``station_pc`` pages given, and may give ``resultat`` as text.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from lab import AssetReadError, ConfigurationError, HttpError, http_session
from recipes._errors import InSituFormatError
from recipes.insitu._core import (
    InSituTable,
    PagingLimitWarning,
    ReadOptions,
    Report,
    empty_table,
    finalize,
    warn,
)
from recipes.insitu._source import PathLike, Source, as_source
from recipes.insitu._units import (
    SANDRE_PARAMETERS,
    SANDRE_QUALIFICATION,
    SANDRE_REMARKS,
)

if TYPE_CHECKING:
    import requests

SOURCE = "hubeau-naiades"
LAMBERT93 = "26"  # SANDRE projection code of RGF93 / Lambert-93 (EPSG:2154)
_RAW_FIELDS = (
    "code_station",
    "date_prelevement",
    "heure_prelevement",
    "code_parametre",
    "libelle_parametre",
    "resultat",
    "symbole_unite",
    "code_remarque",
    "code_qualification",
    "limite_detection",
    "limite_quantification",
)
_LONG = ("station_id", "time", "lon", "lat", "parameter", "value", "unit", "qc_flag")
_CENSORED = {"2": "limite_detection", "7": "limite_quantification", "10": "limite_quantification"}

Page = Mapping[str, Any]
Fetch = Callable[[str], Page]


@lru_cache(maxsize=1)
def _lambert93_to_wgs84() -> Any:  # pyproj.Transformer
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)


def lambert93_to_lonlat(x: float, y: float) -> tuple[float, float]:
    """Convert Lambert-93 (EPSG:2154) metres to WGS84 degrees (lon, lat)."""
    lon, lat = _lambert93_to_wgs84().transform(x, y)
    return float(lon), float(lat)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance on the WGS84 ellipsoid, in metres."""
    from pyproj import Geod

    return float(Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2])


def station_lonlat(record: Page, tolerance_m: float) -> tuple[float, float] | str:
    """WGS84 position of a ``station_pc`` record, or why it cannot be trusted."""
    x, y = record.get("coordonnee_x"), record.get("coordonnee_y")
    lon, lat = record.get("longitude"), record.get("latitude")
    code = str(record.get("code_projection") or "")
    projected = None
    if x is not None and y is not None:
        if code == LAMBERT93:
            projected = lambert93_to_lonlat(float(x), float(y))
        elif lon is None or lat is None:
            name = record.get("libelle_projection")
            return f"station coordinates in SANDRE projection {code!r} ({name}) not supported"
    if lon is not None and lat is not None:
        if projected is not None:
            gap = distance_m(*projected, float(lon), float(lat))
            if gap > tolerance_m:
                return (
                    f"station Lambert-93 ({x}, {y}) and longitude/latitude ({lon}, {lat}) are "
                    f"{gap:.0f} m apart (tolerance {tolerance_m:g} m)"
                )
        return float(lon), float(lat)
    return projected if projected is not None else "station has no coordinates"


def load_pages(
    items: Page | PathLike | Source | Iterable[Page | PathLike | Source],
    storage_options: Mapping[str, Any] | None = None,
) -> list[tuple[str, Page]]:
    """Hub'Eau responses from files (paths or URLs) or already-parsed pages, labelled."""
    if isinstance(items, Mapping | str | os.PathLike | Source):
        items = [items]
    pages = []
    for n, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            pages.append((f"page {n}", item))
            continue
        source = as_source(item, storage_options)
        source.check_not_empty()
        try:
            page = json.loads(source.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InSituFormatError(f"{source.label} is not valid JSON: {exc}") from exc
        pages.append((source.name, page))
    for label, page in pages:
        if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
            raise InSituFormatError(
                f"{label} is not a Hub'Eau response: expected an object with a 'data' list"
            )
    return pages


def _kind(page: Page) -> str | None:
    first = page["data"][0] if page["data"] else {}
    if "code_parametre" in first:
        return "analyses"
    if "coordonnee_x" in first or "code_projection" in first:
        return "stations"
    return None if not first else "other"


def read_hubeau(
    pages: Page | PathLike | Iterable[Page | PathLike],
    stations: Page | PathLike | Iterable[Page | PathLike] | None = None,
    *,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
    tolerance_m: float = 10.0,
    source: str = SOURCE,
    allow_empty: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> InSituTable:
    """Read Hub'Eau ``analyse_pc`` pages joined to ``station_pc`` pages into the tidy table.

    Parameters
    ----------
    pages
        Responses (JSON files, as paths or URLs, or already-decoded pages) of ``analyse_pc``;
        ``station_pc`` pages may be mixed in, they are recognised by their fields.
    stations
        ``station_pc`` responses giving the station positions. Lambert-93 coordinates
        (``code_projection`` 26) are converted with pyproj and checked against
        ``longitude``/``latitude`` when both are given. Without a station record, API v2
        analyses use their own ``longitude``/``latitude``; others are rejected.
    parameters
        Lab parameter name(s) to keep (default all); an unknown name raises
        :class:`UnknownParameterError` listing the known ones.
    timezone
        IANA zone in which times written without a zone were taken (e.g. ``"Europe/Paris"``).
    naive_time
        Without ``timezone``: ``"utc"`` reads zone-less times as UTC with a
        :class:`NaiveTimeWarning`; ``"error"`` raises :class:`~recipes.InSituFormatError`.
    tolerance_m
        Largest distance allowed between a station's Lambert-93 and WGS84 positions.
    source
        Value of the ``source`` column.
    allow_empty
        Return an empty table instead of raising when there is no analysis at all.
    storage_options
        fsspec options for URLs other than ``http(s)`` and ``file`` (e.g. S3 credentials).

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row. SANDRE codes the lab does not map become ``sandre_<code>`` (listed in ``notes``).

    Raises
    ------
    recipes.InSituFormatError
        If a file is empty, not JSON, not a Hub'Eau response, or holds no analysis.
    """
    options = ReadOptions.make(parameters, timezone, naive_time)
    loaded = load_pages(pages, storage_options)
    if stations is not None:
        loaded += load_pages(stations, storage_options)
    by_kind: dict[str | None, list[tuple[str, Page]]] = {}
    for label, page in loaded:
        by_kind.setdefault(_kind(page), []).append((label, page))
    if "other" in by_kind:
        names = [label for label, _ in by_kind["other"]]
        raise InSituFormatError(
            f"{names} hold neither analyse_pc nor station_pc records (no 'code_parametre', "
            "'coordonnee_x' or 'code_projection' field)"
        )
    label = ", ".join(dict.fromkeys(lbl for lbl, _ in loaded))
    report = Report()
    coordinates = _stations(by_kind.get("stations", []), tolerance_m)
    analyses = by_kind.get("analyses", [])
    rows = _analyses(analyses, coordinates, report, source)
    if not analyses:
        if allow_empty:
            return empty_table(label, ["the query matched no analysis"])
        raise InSituFormatError(
            f"no analyse_pc record in {label}: nothing to read (pass the analyse_pc pages, "
            "not only station_pc)"
        )
    long = pd.DataFrame(rows, columns=[*_LONG, "source", "_row", "_raw"])
    return finalize(long, report, options, label=label)


def _stations(pages: list[tuple[str, Page]], tolerance_m: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, page in pages:
        for record in page["data"]:
            out[str(record.get("code_station"))] = station_lonlat(record, tolerance_m)
    return out


def _analyses(
    pages: list[tuple[str, Page]], coordinates: dict[str, Any], report: Report, source: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    unmapped: Counter[tuple[str, Any]] = Counter()
    censored = 0
    for label, page in pages:
        for i, record in enumerate(page["data"]):
            where = f"{label} data[{i}]"
            raw = json.dumps({k: record.get(k) for k in _RAW_FIELDS}, ensure_ascii=False)
            row = _row(record, coordinates)
            if isinstance(row, str):
                report.reject_one(where, row, raw)
                continue
            if row["parameter"].startswith("sandre_"):
                unmapped[(row["parameter"], record.get("libelle_parametre"))] += 1
            censored += row["qc_flag"] == 6
            rows.append({**row, "source": source, "_row": where, "_raw": raw})
    for (name, title), n in unmapped.items():
        report.note(f"SANDRE code not mapped to a lab parameter, kept as {name}: {title} ({n})")
    if censored:
        report.note(
            f"{censored} result(s) below a detection/quantification limit: value = the limit, "
            "qc_flag 6"
        )
    return rows


def _row(record: Page, coordinates: dict[str, Any]) -> dict[str, Any] | str:
    code = str(record.get("code_station") or "")
    where = coordinates.get(code)
    if where is None and record.get("longitude") is not None and record.get("latitude") is not None:
        where = (float(record["longitude"]), float(record["latitude"]))
    if where is None:
        return (
            f"station {code or '(none)'} is not in the station_pc pages given (pass them as "
            "stations=, or read API v2 analyses, which carry longitude/latitude)"
        )
    if isinstance(where, str):
        return f"station {code}: {where}"
    day, hour = record.get("date_prelevement"), record.get("heure_prelevement")
    if not day:
        return "no sampling date (date_prelevement)"
    if not hour:
        return "no sampling hour (heure_prelevement): the time of day is unknown"
    measured = _value_and_flag(record)
    if isinstance(measured, str):
        return measured
    parameter = str(record.get("code_parametre") or "")
    return {
        "station_id": code,
        "time": f"{str(day)[:10]}T{hour}",
        "lon": where[0],
        "lat": where[1],
        "parameter": SANDRE_PARAMETERS.get(parameter, f"sandre_{parameter}"),
        "value": measured[0],
        "unit": record.get("symbole_unite") or "",
        "qc_flag": measured[1],
    }


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _value_and_flag(record: Page) -> tuple[Any, int] | str:
    """Value and L20 flag from the SANDRE remark and qualification codes, or why not."""
    remark = str(record.get("code_remarque") or "")
    quality = SANDRE_QUALIFICATION.get(str(record.get("code_qualification")), 0)
    result = record.get("resultat")
    meaning = SANDRE_REMARKS.get(remark, "unknown SANDRE remark code")
    if remark == "1":
        return result, quality
    if remark in _CENSORED or remark == "3":
        field = _CENSORED.get(remark, "limite_saturation")
        limit = record.get(field)
        value = limit if limit is not None else result
        number = _number(value)
        if number is None or number <= 0:
            return f"code_remarque {remark} ({meaning}) without a usable limit ({field}, resultat)"
        flag = 6 if remark in _CENSORED else 7
        return value, quality if quality in (3, 4) else flag
    return f"code_remarque {remark or '(none)'} ({meaning}): not a measured value"


def http_get_json(session: requests.Session, url: str) -> Page:
    """GET a URL with a lab HTTP session and decode its JSON body (:func:`fetch_hubeau`'s fetch).

    Raises
    ------
    lab.AssetReadError
        If the server cannot be reached (after the session's retries) or answers an error.
    recipes.InSituFormatError
        If the answer is not JSON.
    """
    try:
        response = session.get(url, headers={"Accept": "application/json"})
    except HttpError as exc:
        raise AssetReadError(f"could not fetch {url}: {exc}") from exc
    body = response.content
    if not 200 <= response.status_code < 300:  # Hub'Eau answers 206 when more pages follow
        raise AssetReadError(
            f"could not fetch {url}: the server answered {response.status_code} "
            f"{response.reason}: {body[:200]!r}"
        )
    try:
        page: Page = json.loads(body)
    except ValueError as exc:
        raise InSituFormatError(f"{url} did not answer JSON: {body[:200]!r}") from exc
    return page


def fetch_pages(url: str, fetch: Fetch, max_pages: int) -> tuple[list[Page], str | None]:
    """Follow ``next`` links from ``url``; return the pages and why paging stopped early."""
    if max_pages < 1:
        raise ConfigurationError(f"max_pages={max_pages} must be at least 1")
    pages: list[Page] = []
    seen: set[str] = set()
    next_url: str | None = url
    while next_url:
        if len(pages) == max_pages:
            count = pages[0].get("count")
            return pages, (
                f"stopped after max_pages={max_pages} page(s) of {url} while the server had more "
                f"({count} results in all): raise max_pages or narrow the query"
            )
        if next_url in seen:
            raise InSituFormatError(f"Hub'Eau paging loops: {next_url} was already fetched")
        seen.add(next_url)
        page = fetch(next_url)
        if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
            raise InSituFormatError(f"{next_url} is not a Hub'Eau response (no 'data' list)")
        pages.append(page)
        next_url = page.get("next")
    return pages, None


def fetch_hubeau(
    url: str,
    *,
    stations_url: str | None = None,
    fetch: Fetch | None = None,
    max_pages: int = 50,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
    tolerance_m: float = 10.0,
    source: str = SOURCE,
) -> InSituTable:
    """Download ``analyse_pc`` (and ``station_pc``) pages by following ``next``, then read them.

    Parameters
    ----------
    url
        First ``analyse_pc`` query, e.g.
        ``https://hubeau.eaufrance.fr/api/v2/qualite_rivieres/analyse_pc?code_station=...``.
    stations_url
        ``station_pc`` query for the positions of the stations (needed with API v1).
    fetch
        Function URL -> decoded JSON page (default: a GET through one ``lab.http_session()``
        for every page: the lab's retry policy, timeout and request hooks); callers with
        their own HTTP client pass theirs.
    max_pages
        Largest number of pages fetched per query. Reaching it while the server still has a
        ``next`` page issues a :class:`PagingLimitWarning` and records it in ``notes``.
    parameters
        Lab parameter name(s) to keep (default all); an unknown name raises
        :class:`UnknownParameterError` listing the known ones.
    timezone
        IANA zone in which times written without a zone were taken (e.g. ``"Europe/Paris"``).
    naive_time
        Without ``timezone``: ``"utc"`` reads zone-less times as UTC with a
        :class:`NaiveTimeWarning`; ``"error"`` raises :class:`~recipes.InSituFormatError`.
    tolerance_m
        As in :func:`read_hubeau`.
    source
        Value of the ``source`` column.

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row. ``source`` is the URL. A query that matches nothing gives an empty table.

    Raises
    ------
    lab.AssetReadError
        If a page cannot be downloaded (the message names the URL).
    recipes.InSituFormatError
        If an answer is not a Hub'Eau page, or ``next`` links loop.
    """
    ReadOptions.make(parameters, timezone, naive_time)  # fail before any download
    with contextlib.ExitStack() as closing:
        if fetch is None:
            fetch = partial(http_get_json, closing.enter_context(http_session()))
        pages, stopped = fetch_pages(url, fetch, max_pages)
        stations = None
        if stations_url is not None:
            stations, stopped_stations = fetch_pages(stations_url, fetch, max_pages)
            stopped = stopped or stopped_stations
    if stopped:
        warn(stopped, PagingLimitWarning)
    table = read_hubeau(
        pages,
        stations,
        parameters=parameters,
        timezone=timezone,
        naive_time=naive_time,
        tolerance_m=tolerance_m,
        source=source,
        allow_empty=True,
    )
    notes = ((stopped,) if stopped else ()) + table.notes
    return InSituTable(table.data, table.rejected, table.flagged, url, notes)
