"""Dataset discovery: ``lab.catalog().collections(...)`` across STAC and CSW centres.

Offline: the sample federation's catalogues (stac-geoparquet with static mirrors), filtered by
the lab, the restricted centre kept closed. Live (integration): the sample's centres served by
``rustac serve`` (``tests/stac_servers.py``) and a real pycsw (``tests/csw_server.py``) holding
the three dataset records of ``tests/data/csw/`` and one ISO record per sample collection.
Expected values come from the records' XML and the sample's collection files, not from the
servers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pystac
import pytest
import yaml
from csw_server import RECORDS, csw_server, sample_records
from stac_servers import IP, stac_servers

import lab
from lab._adapters._csw import NOT_ITEMS
from lab._cli import main

HANDWRITTEN = {"odatis-med-chl-l4-daily", "aeris-parasol-aod-ocean-l2", "somlit-coastal-hydrology"}


def sample_collections(sample_dir: Path) -> dict[str, pystac.Collection]:
    found = {}
    for centre in ("theia", "odatis", "dinamis", "aeris"):
        root = pystac.Catalog.from_file(str(sample_dir / centre / "catalog.json"))
        for collection in root.get_all_collections():
            found[collection.id] = collection
    return found


def mentions(collection: pystac.Collection, word: str) -> bool:
    text = [collection.id, collection.title or "", collection.description]
    return any(word in t.lower() for t in [*text, *(collection.keywords or [])])


# --- offline: the sample federation --------------------------------------------------------


def test_sample_collections_filtered_by_the_lab_restricted_kept_closed(sample_dir: Path) -> None:
    expected = sample_collections(sample_dir)
    result = lab.catalog(sample_dir / "centres.yaml").collections()
    assert [(c.extra_fields["earthlab:centre"], c.id) for c in result] == [
        ("theia", "sentinel-2-l2a"),
        ("theia", "sentinel2-l2a-theia"),
        ("odatis", "insitu-water-quality"),
        ("odatis", "ocean-colour-daily"),
        ("aeris", "aerosol-optical-depth-daily"),
    ]
    for collection in result:
        assert collection.title == expected[collection.id].title
        assert collection.extent.to_dict() == expected[collection.id].extent.to_dict()
    dinamis = result.federation["dinamis"]
    assert dinamis.status == "restricted"
    assert "request access via https://dinamis.data-terra.org/" in dinamis.error
    assert result.federation_missing == ["dinamis"]
    assert result.federation["theia"].note == "filtered by the lab"
    text = result.describe()
    assert text.startswith("5 collections for every collection (incomplete: dinamis not")
    assert "filtered by the lab" in repr(result)


def test_sample_collections_by_q_bbox_and_datetime(sample_dir: Path) -> None:
    federation = lab.catalog(sample_dir / "centres.yaml")
    assert [c.id for c in federation.collections(q="WATER quality")] == ["insitu-water-quality"]
    assert [c.id for c in federation.collections(q="nothing-like-this")] == []
    # the sample lies around the Étang de Thau (3.5-3.8 E, 43.3-43.5 N)
    assert len(federation.collections(bbox=[3.5, 43.3, 3.8, 43.5])) == 5
    far = federation.collections(bbox=[-30, 40, -20, 50])
    assert len(far) == 0
    assert far.federation["dinamis"].status == "ok"  # nothing restricted matches: nothing hidden
    start = min(c.extent.temporal.intervals[0][0] for c in sample_collections(sample_dir).values())
    before = federation.collections(datetime=f"../{start.year - 1}-12-31")
    assert len(before) == 0
    assert len(federation.collections(datetime=str(start.date()))) >= 1


def test_a_csw_centre_in_search_is_skipped_with_a_note(sample_dir: Path, tmp_path: Path) -> None:
    document = yaml.safe_load((sample_dir / "centres.yaml").read_text(encoding="utf-8"))
    for entry in document["centres"]:
        for key in ("catalog", "static_catalog"):
            value = entry[key] if key != "catalog" else entry[key]["href"]
            path = str((sample_dir / value).resolve())
            if key == "catalog":
                entry[key]["href"] = path
            else:
                entry[key] = path
    document["centres"].append(
        {"name": "sextant", "catalog": {"kind": "csw", "href": "http://127.0.0.1:9/csw"}}
    )
    path = tmp_path / "centres.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = lab.catalog(path).search(collections="sentinel-2-l2a", limit=2)
    assert len(result) == 2
    report = result.federation["sextant"]
    assert (report.status, report.note) == ("skipped", NOT_ITEMS)
    assert "sextant" not in result.federation_missing
    # a CSW centre declares no collections but holds no items: a typo is still an error
    with pytest.raises(lab.ConfigurationError, match="did you mean 'sentinel-2-l2a'"):
        lab.catalog(path).search(collections="sentinel-2-l2")


def test_without_a_static_mirror_collections_are_made_from_the_items(
    sample_dir: Path, tmp_path: Path
) -> None:
    items = [
        item
        for item in pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json")).get_items(
            recursive=True
        )
        if item.collection_id == "sentinel-2-l2a"
    ]
    path = tmp_path / "centres.yaml"
    href = str(sample_dir / "theia" / "items.parquet")
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "centres": [
                    {"name": "theia", "catalog": {"kind": "stac-geoparquet", "href": href}}
                ],
            }
        ),
        encoding="utf-8",
    )
    result = lab.catalog(path).collections(q="sentinel-2")
    [collection] = result
    assert collection.id == "sentinel-2-l2a"
    assert collection.description == f"{len(items)} items"
    assert collection.extent.spatial.bboxes == [
        [
            min(i.bbox[0] for i in items),
            min(i.bbox[1] for i in items),
            max(i.bbox[2] for i in items),
            max(i.bbox[3] for i in items),
        ]
    ]
    times = [i.datetime for i in items]
    assert collection.extent.temporal.intervals == [[min(times), max(times)]]
    assert result.federation["theia"].note.startswith("collections made from the items")


def test_cli_collections_offline_and_its_bad_arguments(
    sample_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    centres = str(sample_dir / "centres.yaml")
    assert main(["collections", "-q", "water", "--centres", centres]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["centre", "id", "title", "temporal", "extent"]
    assert out[2].split()[:2] == ["odatis", "insitu-water-quality"]
    assert out[4].startswith("1 collections for q=water")
    assert main(["collections", "--json", "--centres", centres]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in document["collections"]] == [
        "sentinel-2-l2a",
        "sentinel2-l2a-theia",
        "insitu-water-quality",
        "ocean-colour-daily",
        "aerosol-optical-depth-daily",
    ]
    assert document["federation:missing"] == ["dinamis"]
    with pytest.raises(SystemExit) as exit_:
        main(["collections", "--bbox", "1,2", "--centres", centres])
    assert exit_.value.code == 2
    assert "argument --bbox: bbox must be four numbers" in capsys.readouterr().err


# --- live: rustac STAC APIs and a pycsw ----------------------------------------------------


@pytest.fixture(scope="module")
def mixed(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """rustac STAC APIs for the sample's centres and a pycsw centre, in one centres file."""
    directory = tmp_path_factory.mktemp("collections")
    written = sample_records(sample_dir / "centres.yaml", directory / "sample-records")
    with (
        stac_servers(sample_dir / "centres.yaml", directory / "stac") as live,
        csw_server(directory / "csw", RECORDS, directory / "sample-records") as csw,
    ):
        document = yaml.safe_load(live.centres_file.read_text(encoding="utf-8"))
        document["centres"].append(
            {
                "name": "sextant",
                "title": "SEXTANT-like CSW",
                "catalog": {"kind": "csw", "href": csw.url, "retries": 0},
            }
        )
        path = directory / "mixed.yaml"
        path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        yield {"centres": path, "csw": csw, "live": live, "sample_records": written}


@pytest.mark.integration
@pytest.mark.slow
def test_collections_across_stac_apis_and_a_csw(mixed: dict, sample_dir: Path) -> None:
    result = lab.catalog(mixed["centres"]).collections(q="chlorophyll")
    expected_stac = sorted(
        c.id for c in sample_collections(sample_dir).values() if mentions(c, "chlorophyll")
    )
    by_centre: dict[str, list[str]] = {}
    for collection in result:
        by_centre.setdefault(collection.extra_fields["earthlab:centre"], []).append(collection.id)
    csw_ids = by_centre.pop("sextant")
    # pycsw's AnyText covers the records' text; the sample records carry the collections' text
    assert set(csw_ids) == {"odatis-med-chl-l4-daily", "somlit-coastal-hydrology"} | set(
        expected_stac
    )
    assert sorted(i for ids in by_centre.values() for i in ids) == expected_stac
    for name in ("theia", "odatis", "dinamis", "aeris"):
        assert result.federation[name].status == "ok"
    assert result.federation["sextant"].status == "ok"
    assert result.federation["sextant"].note.startswith("ISO 19139 records mapped")
    assert "filtered by the lab" in result.federation["theia"].note or (
        "Collection Search" in result.federation["theia"].note
    )
    ocean = next(c for c in result if c.id == "odatis-med-chl-l4-daily")
    # the values of tests/data/csw/odatis-med-chl-l4.xml, through pycsw and OWSLib
    assert ocean.title.startswith("Mediterranean Sea ocean colour: chlorophyll-a")
    assert ocean.extent.spatial.bboxes == [[-6.0, 30.0, 36.5, 46.0]]
    assert ocean.extent.temporal.intervals[0][0].isoformat() == "1997-09-16T00:00:00+00:00"
    assert ocean.extent.temporal.intervals[0][1].date().isoformat() == "2023-12-31"
    assert ocean.license == "CC-BY-4.0"
    assert ocean.extra_fields["earthlab:keyword_thesauri"]["NASA/GCMD Earth Science Keywords"] == [
        "EARTH SCIENCE > OCEANS > OCEAN OPTICS > CHLOROPHYLL",
        "EARTH SCIENCE > OCEANS > OCEAN OPTICS > OCEAN COLOR",
    ]
    assert [p.name for p in ocean.providers or []] == ["ACRI-ST", "ODATIS - Pôle de données océan"]
    assert {link.href for link in ocean.links if link.rel in ("wms", "enclosure", "service")} == {
        "https://odatis.example.org/wms/oceancolour",
        "https://odatis.example.org/thredds/fileServer/oceancolour/med-chl-l4-daily/",
        "https://odatis.example.org/thredds/dodsC/oceancolour/med-chl-l4-daily",
    }


@pytest.mark.integration
@pytest.mark.slow
def test_csw_bbox_and_datetime(mixed: dict, sample_dir: Path) -> None:
    federation = lab.catalog(mixed["centres"])
    atlantic = federation.collections(bbox=[-30, 40, -20, 50], centres=["sextant"])
    assert [c.id for c in atlantic] == ["aeris-parasol-aod-ocean-l2"]  # the only global record
    thau = federation.collections(bbox=[3.5, 43.3, 3.8, 43.5], centres=["sextant"])
    assert HANDWRITTEN | set(mixed["sample_records"]) == {c.id for c in thau}
    for collection in thau:  # the sample's collections come back as they were written
        written = mixed["sample_records"].get(collection.id)
        if written:
            assert collection.title == written["title"]
            assert collection.extent.spatial.bboxes == written["extent"]["spatial"]["bbox"]
    # 2024: only SOMLIT's open-ended period (1997-now) and sample collections reaching 2024
    in_2024 = federation.collections(datetime="2024", centres=["sextant"])
    expected = {"somlit-coastal-hydrology"} | {
        i
        for i, c in mixed["sample_records"].items()
        if c["extent"]["temporal"]["interval"][0][1] is None
        or c["extent"]["temporal"]["interval"][0][1] >= "2024"
    }
    assert {c.id for c in in_2024} == expected
    assert "datetime: start sent to the CSW" in in_2024.federation["sextant"].note
    # 2010: the three handwritten periods overlap it, the sample's (2021-2022) do not
    in_2010 = federation.collections(datetime="2010-01-01/2010-12-31", centres=["sextant"])
    assert {c.id for c in in_2010} == HANDWRITTEN


@pytest.mark.integration
@pytest.mark.slow
def test_search_skips_the_csw_and_the_cli_lists_collections(
    mixed: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    result = lab.catalog(mixed["centres"]).search(collections="sentinel-2-l2a", limit=1)
    assert len(result) == 1
    assert result.federation["sextant"].status == "skipped"
    assert result.federation["sextant"].note == NOT_ITEMS

    code = main(["collections", "--q", "aerosol", "--centres", str(mixed["centres"])])
    out = capsys.readouterr().out
    assert code == 0
    header, _, ours, row = out.splitlines()[:4]
    assert header.split() == ["centre", "id", "title", "temporal", "extent"]
    assert ours.split()[:2] == ["aeris", "aerosol-optical-depth-daily"]  # the sample's aeris
    assert row.split()[:2] == ["sextant", "aeris-parasol-aod-ocean-l2"]
    assert row.endswith("2005-03-04/2013-10-10")
    # the CSW also holds records of the sample's collections (sample_records)
    assert "3 collections for q=aerosol" in out

    code = main(["collections", "--json", "--datetime", "2010", "--centres", str(mixed["centres"])])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {c["id"] for c in document["collections"]} == HANDWRITTEN
    assert {r["centre"]: r["status"] for r in document["federation"]} == {
        "theia": "ok",
        "odatis": "ok",
        "dinamis": "ok",
        "aeris": "ok",
        "sextant": "ok",
    }
    assert document["federation:missing"] == []


class _FixedAnswers(BaseHTTPRequestHandler):
    """Answers that are not a CSW: an HTML page, an OWS ExceptionReport, a JSON document."""

    BODIES: ClassVar[dict[str, tuple[str, str]]] = {
        "/html": ("text/html", "<!DOCTYPE html><html><body><h1>Portal</h1></body></html>"),
        "/exception": (
            "application/xml",
            '<?xml version="1.0"?><ows:ExceptionReport version="1.2.0" '
            'xmlns:ows="http://www.opengis.net/ows"><ows:Exception '
            'exceptionCode="InvalidParameterValue"><ows:ExceptionText>service unknown'
            "</ows:ExceptionText></ows:Exception></ows:ExceptionReport>",
        ),
        "/json": ("application/json", '{"type": "Catalog", "links": []}'),
    }

    def do_GET(self) -> None:
        kind, body = self.BODIES[self.path.split("?")[0]]
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.integration
def test_answers_that_are_not_a_csw_are_missing_with_the_reason(tmp_path: Path) -> None:
    server = ThreadingHTTPServer((IP, 0), _FixedAnswers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://{IP}:{server.server_address[1]}"
        refused = ThreadingHTTPServer((IP, 0), _FixedAnswers)
        closed_port = refused.server_address[1]
        refused.server_close()
        centres = [
            {"name": name, "catalog": {"kind": "csw", "href": href, "retries": 0, "timeout": 20}}
            for name, href in (
                ("html", f"{base}/html"),
                ("report", f"{base}/exception"),
                ("json", f"{base}/json"),
                ("refused", f"http://{IP}:{closed_port}/csw"),
            )
        ]
        path = tmp_path / "centres.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "centres": centres}), encoding="utf-8")
        result = lab.catalog(path).collections(q="anything")
    finally:
        server.shutdown()
        server.server_close()
    assert len(result) == 0
    assert set(result.missing) == {"html", "report", "json", "refused"}
    assert "is declared kind: csw but is not an OGC CSW 2.0.2" in result.missing["html"]
    assert result.missing["html"].startswith("CatalogError: ")
    assert "ExceptionReport" in result.missing["report"]
    assert "service unknown" in result.missing["report"]
    assert "is not an OGC CSW 2.0.2" in result.missing["json"]
    assert result.missing["refused"].startswith("ConnectionError: ")
    assert "did not answer" in result.missing["refused"]


@pytest.mark.integration
@pytest.mark.slow
def test_pgstac_answers_collection_search_itself_with_the_same_collections(
    pgstac_federation, sample_dir: Path
) -> None:
    """stac-fastapi-pgstac conforms to Collection Search: q, bbox, datetime go to the server."""
    federation = lab.catalog(pgstac_federation.centres_file)
    offline = lab.catalog(sample_dir / "centres.yaml")
    for query in (
        {"q": "water"},
        {"q": "sentinel"},
        {"bbox": [3.5, 43.3, 3.8, 43.5]},
        {"bbox": [-30, 40, -20, 50]},
        {"datetime": "2022-01/2022-02"},
        {"datetime": "2030"},
    ):
        served = federation.collections(**query)
        for name in ("theia", "odatis"):
            assert served.federation[name].status == "ok", served.describe()
            assert served.federation[name].note.startswith("STAC Collection Search"), (
                served.describe()
            )
        open_ids = [c.id for c in offline.collections(**query)]
        assert [c.id for c in served if c.id != "pleiades-ms"] == open_ids, query


@pytest.mark.integration
@pytest.mark.slow
def test_csw_paging_is_followed_and_bounded(mixed: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab._adapters import _csw

    every = HANDWRITTEN | set(mixed["sample_records"])
    monkeypatch.setattr(_csw, "PAGE_SIZE", 2)
    paged = lab.catalog(mixed["centres"]).collections(centres=["sextant"])
    assert {c.id for c in paged} == every
    assert "only the first" not in paged.federation["sextant"].note
    monkeypatch.setattr(_csw, "MAX_RECORDS", 4)
    cut = lab.catalog(mixed["centres"]).collections(centres=["sextant"])
    assert len(cut) == 4
    assert cut.federation["sextant"].note.endswith(f"only the first 4 of {len(every)} records read")


@pytest.mark.integration
@pytest.mark.slow
def test_csw_without_temporal_queryable_is_filtered_by_the_lab(
    mixed: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lab._adapters import _csw

    federation = lab.catalog(mixed["centres"])
    sent = federation.collections(datetime="2010", centres=["sextant"])
    monkeypatch.setattr(_csw.CswAdapter, "_temporal_queryable", lambda self, csw: False)
    here = federation.collections(datetime="2010", centres=["sextant"])
    assert {c.id for c in here} == {c.id for c in sent} == HANDWRITTEN
    assert "datetime filtered by the lab" in here.federation["sextant"].note


def _collection(identifier: str, title: str, west: float) -> dict:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": identifier,
        "title": title,
        "description": title,
        "license": "CC-BY-4.0",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[west, 40.0, west + 1.0, 41.0]]},
            "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]},
        },
    }


class _StacApis(BaseHTTPRequestHandler):
    """Small STAC APIs: without Collection Search (two pages), with it but no free text,
    one refusing (403), one answering HTML."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        path, _, _ = self.path.partition("?")
        base = f"http://{IP}:{self.server.server_address[1]}"
        core = [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/collections",
        ]
        search = "https://api.stacspec.org/v1.0.0-rc.1/collection-search"
        if path in ("/plain/", "/searchable/"):
            conforms = core + ([search] if path == "/searchable/" else [])
            body: object = {"type": "Catalog", "id": "x", "description": "x", "links": [],
                            "stac_version": "1.1.0", "conformsTo": conforms}  # fmt: skip
        elif path == "/plain/collections" and "page=2" not in self.path:
            body = {
                "collections": [_collection("ocean-a", "Ocean colour A", 3.0)],
                "links": [{"rel": "next", "href": f"{base}/plain/collections?page=2"}],
            }
        elif path == "/plain/collections":
            body = {"collections": [_collection("land-b", "Land B", 3.0)], "links": []}
        elif path == "/searchable/collections":
            body = {"collections": [_collection("ocean-c", "Ocean colour C", 3.0),
                                    _collection("land-d", "Land D", 3.0)], "links": []}  # fmt: skip
        elif path.startswith("/refusing/"):
            self._answer(403, "application/json", '{"description": "members only"}')
            return
        else:
            self._answer(200, "text/html", "<html><body>portal</body></html>")
            return
        self._answer(200, "application/json", json.dumps(body))

    def _answer(self, status: int, kind: str, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.integration
def test_stac_apis_without_free_text_are_filtered_by_the_lab(tmp_path: Path) -> None:
    server = ThreadingHTTPServer((IP, 0), _StacApis)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _StacApis.asked.clear()
    try:
        base = f"http://{IP}:{server.server_address[1]}"
        centres = [
            {"name": name, "catalog": {"kind": "stac-api", "href": f"{base}/{name}/", "retries": 0}}
            for name in ("plain", "searchable", "refusing", "portal")
        ]
        path = tmp_path / "centres.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "centres": centres}), encoding="utf-8")
        result = lab.catalog(path).collections(q="ocean", bbox=[2.5, 40.2, 3.5, 40.8])
    finally:
        server.shutdown()
        server.server_close()
    assert [(c.extra_fields["earthlab:centre"], c.id) for c in result] == [
        ("plain", "ocean-a"),  # from the second page too: land-b was read and filtered out
        ("searchable", "ocean-c"),
    ]
    assert "/plain/collections?page=2" in _StacApis.asked
    searched = [p for p in _StacApis.asked if p.startswith("/searchable/collections")]
    assert searched == ["/searchable/collections?bbox=2.5%2C40.2%2C3.5%2C40.8"]
    plain = result.federation["plain"].note
    assert plain == "no Collection Search conformance: /collections filtered by the lab"
    assert result.federation["searchable"].note == (
        "STAC Collection Search on the server, q filtered by the lab (no free-text conformance)"
    )
    assert result.federation["refusing"].status == "restricted"
    assert "members only" in result.federation["refusing"].error
    assert result.federation["portal"].status == "missing"
    assert "is declared kind: stac-api but its answer is not JSON" in result.missing["portal"]
