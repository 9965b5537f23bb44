"""OGC CSW catalogues (``kind: csw``): ISO 19139 dataset records as STAC Collections.

Data Terra's centres publish their dataset catalogues as ISO 19115/19139 records behind OGC
CSW 2.0.2 (GeoNetwork, pycsw). This adapter asks GetRecords through OWSLib's
``CatalogueServiceWeb``, with a filter made of the query (``q``: ``csw:AnyText`` like each
term, any of them; ``bbox``: ``ows:BoundingBox`` in CRS84; ``datetime``: the ISO queryable
``apiso:TempExtent_begin`` when the server lists it, the rest of the overlap checked by the
lab), output schema ISO 19139 (``gmd``), paging through every match (at most
:data:`MAX_RECORDS`, reported), and maps each ``gmd:MD_Metadata`` with :func:`iso_collection`.

A CSW holds dataset records, not items: ``search`` reports a CSW centre ``skipped`` with a note
saying to use ``collections``. An answer that is not a CSW (an HTML page, a JSON document, an
OWS ExceptionReport) is a :class:`~lab._errors.CatalogError` naming the centre; no answer is a
``ConnectionError`` (retried by the federation).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pystac

from lab._adapters import AdapterResult
from lab._adapters._common import request_headers
from lab._errors import CatalogError, RestrictedDataError
from lab._reports import CentreCollections

if TYPE_CHECKING:
    from lab._centres import Centre
    from lab._collections import CollectionQuery
    from lab._query import SearchQuery

GMD = "http://www.isotc211.org/2005/gmd"
"""The ISO 19139 output schema asked for."""
PAGE_SIZE = 50
"""Records asked per GetRecords request."""
MAX_RECORDS = 2000
"""Records read from one CSW at most; the report says when there were more."""
CRS84 = "urn:ogc:def:crs:OGC:1.3:CRS84"
NOT_ITEMS = (
    "a CSW catalogue holds dataset records, not items: find its datasets with "
    "lab.catalog().collections(...) (earthlab collections)"
)
THEMES_SCHEMA = "https://stac-extensions.github.io/themes/v1.0.0/schema.json"
KEYWORD_THESAURI = "earthlab:keyword_thesauri"
CONSTRAINTS = "earthlab:constraints"
#: ISO 19115 CI_RoleCode -> STAC provider role.
PROVIDER_ROLES = {
    "originator": "producer",
    "principalInvestigator": "producer",
    "author": "producer",
    "processor": "processor",
    "owner": "licensor",
    "rightsHolder": "licensor",
    "distributor": "host",
    "custodian": "host",
    "resourceProvider": "host",
    "publisher": "host",
}
#: Licence texts or URLs -> SPDX identifier (the first that matches wins).
SPDX_PATTERNS = (
    (re.compile(r"creativecommons\.org/publicdomain/zero/1\.0|\bCC0\b", re.I), "CC0-1.0"),
    (
        re.compile(r"creativecommons\.org/licenses/by-sa/4\.0|\bCC[ -]BY[ -]SA[ -]4\.0", re.I),
        "CC-BY-SA-4.0",
    ),
    (
        re.compile(r"creativecommons\.org/licenses/by-nc/4\.0|\bCC[ -]BY[ -]NC[ -]4\.0", re.I),
        "CC-BY-NC-4.0",
    ),
    (re.compile(r"creativecommons\.org/licenses/by/4\.0|\bCC[ -]BY[ -]4\.0", re.I), "CC-BY-4.0"),
    (re.compile(r"creativecommons\.org/licenses/by/3\.0|\bCC[ -]BY[ -]3\.0", re.I), "CC-BY-3.0"),
    (
        re.compile(r"licence[- ]ouverte.*2\.0|open licen[cs]e.*2\.0|etalab[- ]2\.0", re.I),
        "etalab-2.0",
    ),
    (re.compile(r"\bODbL\b|opendatacommons\.org/licenses/odbl", re.I), "ODbL-1.0"),
)


class CswAdapter:
    """Ask an OGC CSW 2.0.2 for ISO 19139 records (see the module docstring)."""

    def __init__(self, centre: Centre):
        self.centre = centre

    def search(self, query: SearchQuery) -> AdapterResult:
        """No items in a CSW: an empty answer saying so (the federation skips CSW centres)."""
        return AdapterResult(items=[], matched=0, note=NOT_ITEMS)

    def collections(self, query: CollectionQuery) -> CentreCollections:
        """The records matching ``query``, as STAC Collections.

        Raises
        ------
        CatalogError
            If the URL does not answer as a CSW (the message says what it answered).
        RestrictedDataError
            If the server answers 401/403.
        """
        csw = self._open()
        constraints = self._constraints(csw, query)
        records: list[Any] = []
        matched = 0
        position = 1
        while True:
            try:
                csw.getrecords2(
                    constraints=constraints,
                    typenames="gmd:MD_Metadata",
                    esn="full",
                    outputschema=GMD,
                    startposition=position,
                    maxrecords=PAGE_SIZE,
                )
            except Exception as exc:
                raise self._failure(exc) from exc
            page = list(csw.records.values())
            records.extend(page)
            matched = int(csw.results.get("matches") or 0)
            following = int(csw.results.get("nextrecord") or 0)
            if not page or following <= position or following > matched:
                break
            if len(records) >= MAX_RECORDS:
                break
            position = following
        collections = []
        for record in records:
            if getattr(record, "identifier", None) is None:
                continue  # a record in another schema (the server ignored outputschema)
            collections.append(iso_collection(record))
        notes = ["ISO 19139 records mapped to STAC Collections"]
        if query.datetime:
            kept = [c for c in collections if query.matches(c)]
            if self._temporal_queryable(csw):
                notes.append("datetime: start sent to the CSW, the overlap checked by the lab")
            else:
                notes.append("datetime filtered by the lab (the CSW lists no TempExtent queryable)")
            collections = kept
        if matched > len(records):
            notes.append(f"only the first {len(records)} of {matched} records read")
        return CentreCollections(collections, matched=len(collections), note="; ".join(notes))

    def _open(self) -> Any:
        from owslib.catalogue.csw2 import CatalogueServiceWeb

        spec = self.centre.catalog
        headers = request_headers(self.centre)
        try:
            csw = CatalogueServiceWeb(spec.href, timeout=spec.timeout, headers=headers or None)
        except Exception as exc:
            raise self._failure(exc) from exc
        if getattr(csw, "identification", None) is None or not getattr(csw, "operations", None):
            raise self._not_csw("its GetCapabilities answer describes no CSW service")
        return csw

    def _constraints(self, csw: Any, query: CollectionQuery) -> list[Any]:
        from owslib.fes import BBox, Or, PropertyIsLessThanOrEqualTo, PropertyIsLike

        parts: list[Any] = []
        if query.q:
            likes = [
                PropertyIsLike("csw:AnyText", f"%{term}%", matchCase=False) for term in query.q
            ]
            parts.append(likes[0] if len(likes) == 1 else Or(likes))
        if query.bbox:
            west, south, east, north = query.bbox
            parts.append(BBox([west, south, east, north], crs=CRS84))
        if query.datetime and query.datetime[1] is not None and self._temporal_queryable(csw):
            # Records starting after the interval cannot overlap it; a record's open end
            # (indeterminatePosition="now") is empty in the server's index, so the end side is
            # checked by the lab.
            end = query.datetime[1].strftime("%Y-%m-%dT%H:%M:%SZ")
            parts.append(PropertyIsLessThanOrEqualTo("apiso:TempExtent_begin", end))
        if not parts:
            return []
        return [parts[0]] if len(parts) == 1 else [parts]  # a nested list is an And

    def _temporal_queryable(self, csw: Any) -> bool:
        for operation in getattr(csw, "operations", []) or []:
            if getattr(operation, "name", "") != "GetRecords":
                continue
            constraints = getattr(operation, "constraints", None) or []
            if isinstance(constraints, dict):
                constraints = list(constraints.values())
            for constraint in constraints:
                values = getattr(constraint, "values", None) or []
                if isinstance(constraint, dict):
                    values = constraint.get("values", [])
                if any(str(v).endswith("TempExtent_begin") for v in values):
                    return True
        return False

    def _failure(self, exc: Exception) -> Exception:
        """What the federation reports (and whether it retries) for an OWSLib failure."""
        import requests

        if isinstance(exc, CatalogError):
            return exc
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            from lab._adapters._common import restricted_message

            return RestrictedDataError(
                restricted_message(self.centre, f"the CSW answered {status}")
            )
        if status is not None and status >= 500:
            return ConnectionError(f"{self.centre.catalog.href} answered {status}")
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            return ConnectionError(f"{self.centre.catalog.href} did not answer: {exc}")
        name = type(exc).__name__
        if name in ("ExceptionReport", "ServiceException"):  # OWSLib's, for an OWS report
            return CatalogError(
                f"centre {self.centre.name}: the CSW {self.centre.catalog.href} refused the "
                f"request (OWS ExceptionReport: {_first_line(exc)})"
            )
        if name == "XMLSyntaxError":
            return self._not_csw(f"its answer is not XML ({_first_line(exc)})")
        if status is not None:
            return CatalogError(
                f"centre {self.centre.name}: the CSW {self.centre.catalog.href} answered "
                f"{status}: {_first_line(exc)}"
            )
        return self._not_csw(f"{name}: {_first_line(exc)}")

    def _not_csw(self, why: str) -> CatalogError:
        return CatalogError(
            f"centre {self.centre.name}: {self.centre.catalog.href} is declared kind: csw but "
            f"is not an OGC CSW 2.0.2: {why}; check the centre's href (the CSW endpoint, e.g. "
            ".../geonetwork/srv/eng/csw) and kind"
        )

    def __repr__(self) -> str:
        return f"<CswAdapter {self.centre.name} {self.centre.catalog.href}>"


def iso_collection(record: Any) -> pystac.Collection:
    """Map an ISO 19139 ``gmd:MD_Metadata`` (OWSLib's ``MD_Metadata``) to a STAC Collection.

    ``fileIdentifier`` -> ``id``; the data identification's title, abstract -> ``title``,
    ``description``; keywords -> ``keywords`` and, per thesaurus, the STAC themes extension
    (``themes``: scheme = the thesaurus URL, else its title) and ``earthlab:keyword_thesauri``
    (thesaurus title -> keywords); ``EX_GeographicBoundingBox`` and ``EX_TemporalExtent`` ->
    ``extent`` (an open end stays open, a date end is the end of that day); the legal
    constraints -> ``license`` (an SPDX id when the text or URL names one, else ``other``) with a
    ``license`` link when a URL is given, and every useLimitation/otherConstraints text in
    ``earthlab:constraints``; ``pointOfContact`` -> ``providers`` (roles from CI_RoleCode);
    ``CI_OnlineResource`` -> links (rel and type from the protocol, see :func:`online_link`).

    Parameters
    ----------
    record
        ``owslib.iso.MD_Metadata``.

    Returns
    -------
    pystac.Collection
    """
    identification = next(iter(record.identification or []), None)
    if identification is None:
        raise CatalogError(f"ISO record {record.identifier!r} has no identificationInfo")
    title = identification.title or record.identifier
    keywords: list[str] = []
    thesauri: dict[str, list[str]] = {}
    themes: list[dict[str, Any]] = []
    for words, thesaurus in _keyword_blocks(record, identification):
        for name, _ in words:
            if name not in keywords:
                keywords.append(name)
        thesaurus_title = thesaurus.get("title")
        if words and thesaurus_title:
            thesauri.setdefault(thesaurus_title, []).extend(name for name, _ in words)
            concepts = []
            for name, url in words:
                concept: dict[str, Any] = {"id": name}
                if url:
                    concept["url"] = url
                concepts.append(concept)
            themes.append({"scheme": thesaurus.get("url") or thesaurus_title, "concepts": concepts})
    for category in identification.topiccategory or []:
        if category not in keywords:
            keywords.append(category)
    bbox = [-180.0, -90.0, 180.0, 90.0]
    box = getattr(identification, "bbox", None)
    if box is not None and None not in (box.minx, box.miny, box.maxx, box.maxy):
        bbox = [float(box.minx), float(box.miny), float(box.maxx), float(box.maxy)]
    start = _instant(identification.temporalextent_start, end=False)
    end = _instant(identification.temporalextent_end, end=True)
    if start is not None and end is not None and end < start:
        end = None  # a broken record: keep it findable by its start
    licence, licence_links, constraints = _licence(identification)
    collection = pystac.Collection(
        id=str(record.identifier),
        title=title,
        description=identification.abstract or title,
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[start, end]])),
        license=licence,
        keywords=keywords or None,
        providers=_providers(identification.contact or []) or None,
    )
    if themes:
        collection.stac_extensions.append(THEMES_SCHEMA)
        collection.extra_fields["themes"] = themes
    if thesauri:
        collection.extra_fields[KEYWORD_THESAURI] = thesauri
    if constraints:
        collection.extra_fields[CONSTRAINTS] = constraints
    for link in licence_links:
        collection.add_link(link)
    for resource in _online_resources(record):
        online = online_link(resource)
        if online is not None:
            collection.add_link(online)
    return collection


_NS = {
    "gmd": GMD,
    "gco": "http://www.isotc211.org/2005/gco",
    "gmx": "http://www.isotc211.org/2005/gmx",
    "xlink": "http://www.w3.org/1999/xlink",
}


def _keyword_blocks(
    record: Any, identification: Any
) -> list[tuple[list[tuple[str, str | None]], dict[str, str | None]]]:
    """Each ``MD_Keywords`` of the first identification: ``([(keyword, url)], thesaurus)``.

    Read from the record's XML: OWSLib keeps only the ``gco:CharacterString`` keywords of a
    block that mixes them with ``gmx:Anchor`` ones. Falls back to OWSLib's blocks.
    """
    from lxml import etree

    try:
        root = etree.fromstring(record.xml)
    except Exception:
        root = None
    info = None if root is None else root.find("gmd:identificationInfo", _NS)
    if info is None or not len(info):
        return [
            (
                [(k.name, k.url) for k in block.keywords if k.name],
                dict(block.thesaurus or {}),
            )
            for block in identification.keywords or []
        ]
    blocks = []
    for block in info[0].iterfind("gmd:descriptiveKeywords/gmd:MD_Keywords", _NS):
        words = []
        for keyword in block.iterfind("gmd:keyword", _NS):
            value = keyword.find("gco:CharacterString", _NS)
            if value is None:
                value = keyword.find("gmx:Anchor", _NS)
            if value is not None and (value.text or "").strip():
                words.append((value.text.strip(), value.get(f"{{{_NS['xlink']}}}href")))
        title = block.find("gmd:thesaurusName/gmd:CI_Citation/gmd:title/*", _NS)
        thesaurus: dict[str, str | None] = {}
        if title is not None and (title.text or "").strip():
            thesaurus = {"title": title.text.strip(), "url": title.get(f"{{{_NS['xlink']}}}href")}
        blocks.append((words, thesaurus))
    return blocks


def online_link(resource: Any) -> pystac.Link | None:
    """A ``CI_OnlineResource`` as a STAC link: rel and media type from its protocol.

    ``OGC:WMS`` -> ``wms`` (web-map-links), ``OGC:WMTS`` -> ``wmts``, other OGC services
    (WFS, WCS, CSW, OPeNDAP) -> ``service`` (``application/xml``), STAC -> ``alternate``
    (``application/json``), downloads (``WWW:DOWNLOAD-*``, function ``download``, ftp) ->
    ``enclosure``, web pages (``WWW:LINK*``) -> ``about`` (``text/html``), anything else
    ``related``. The protocol is kept in ``earthlab:protocol``, the name in ``title``.
    """
    href = resource.url
    if not href:
        return None
    protocol = (resource.protocol or "").strip()
    upper = protocol.upper()
    function = (resource.function or "").lower()
    media_type: str | None = None
    extra: dict[str, Any] = {}
    if upper.startswith("OGC:WMS"):
        rel, media_type = "wms", "application/vnd.ogc.wms_xml"
        if resource.name:
            extra["wms:layers"] = [resource.name]
    elif upper.startswith("OGC:WMTS"):
        rel, media_type = "wmts", "application/xml"
    elif "STAC" in upper:
        rel, media_type = "alternate", "application/json"
    elif upper.startswith(("OGC:", "OPENDAP")):
        rel, media_type = "service", "application/xml" if upper.startswith("OGC:") else None
    elif "DOWNLOAD" in upper or function == "download" or href.startswith("ftp://"):
        rel = "enclosure"
    elif upper.startswith("WWW:LINK") or function == "information":
        rel, media_type = "about", "text/html"
    else:
        rel = "related"
    if protocol:
        extra["earthlab:protocol"] = protocol
    title = resource.description or resource.name
    return pystac.Link(rel, href, media_type=media_type, title=title, extra_fields=extra)


def _online_resources(record: Any) -> list[Any]:
    distribution = getattr(record, "distribution", None)
    resources = list(getattr(distribution, "online", None) or [])
    for distributor in getattr(distribution, "distributor", None) or []:
        resources.extend(getattr(distributor, "online", None) or [])
    seen: set[tuple[str, str]] = set()
    unique = []
    for resource in resources:
        key = (resource.url or "", resource.protocol or "")
        if key not in seen:
            seen.add(key)
            unique.append(resource)
    return unique


def _licence(identification: Any) -> tuple[str, list[pystac.Link], list[str]]:
    """``license``, its links and the constraint texts of a data identification."""
    texts = [t for t in (identification.uselimitation or []) if t]
    texts += [t for t in (identification.otherconstraints or []) if t]
    urls = [u for u in (getattr(identification, "otherconstraints_url", None) or []) if u]
    urls += [u for u in (getattr(identification, "uselimitation_url", None) or []) if u]
    # INSPIRE's access codes (noLimitations...) are constraints, not licences
    licence_urls = [u for u in urls if "LimitationsOnPublicAccess" not in u]
    for text in [*texts, *urls]:
        for pattern, spdx in SPDX_PATTERNS:
            if pattern.search(text):
                links = [pystac.Link("license", u, title=spdx) for u in licence_urls]
                return spdx, links, texts
    return "other", [pystac.Link("license", u) for u in licence_urls], texts


def _providers(contacts: list[Any]) -> list[pystac.Provider]:
    providers = []
    for contact in contacts:
        name = contact.organization or contact.name
        if not name:
            continue
        role = PROVIDER_ROLES.get(contact.role or "")
        who = ", ".join(p for p in (contact.name, contact.email) if p)
        description = f"ISO 19115 role: {contact.role or 'unknown'}" + (f" ({who})" if who else "")
        url = contact.organization_url or (
            contact.onlineresource.url if contact.onlineresource else None
        )
        providers.append(
            pystac.Provider(
                name=name,
                description=description,
                roles=[role] if role else None,  # type: ignore[list-item]
                url=url,
            )
        )
    return providers


def _instant(value: str | None, *, end: bool) -> dt.datetime | None:
    """A TimePeriod position as UTC (a date end is the end of that day); None when open."""
    from lab._query import _bound

    if not value or value.strip().lower() in ("now", "unknown", "before", "after"):
        return None
    text = value.strip()
    try:
        return _bound(text, end=end)
    except Exception:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else repr(exc)
