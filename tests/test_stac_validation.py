"""Independent validation of what the lab serves (issue 15, item 3).

- Every item, collection and catalogue of the sample federation (static catalogues, and the
  items of the stac-geoparquet files the lab serves) validates against the JSON schemas of the
  STAC core at the version it declares and of every extension it lists, from the offline copies
  in ``tests/data/stac-schemas/`` (``tests/stac_schemas.py``); a broken item is rejected with
  the path of the offending value.
- The lab's STAC APIs (``rustac serve`` per centre behind ``lab_server.stac_front``, as
  ``earthlab hub up`` runs them) pass stac-api-validator, run offline
  (``tests/stac_api_validator_offline.py``) with the conformance classes each API declares;
  what they serve validates against the stored schemas too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
import stac_schemas
from hub_fixtures import Hub, running_lab
from stac_schemas import SCHEMAS, SchemaNotStoredError, local_schema, validate
from stac_servers import LiveFederation, stac_servers

from lab_server.deploy._layout import access_scope

HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "stac_api_validator_offline.py"
SOURCES = SCHEMAS / "SOURCES.md"
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|(?P<cells>.*)\|$")

EXTENSIONS = {
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
}
"""The extensions the sample federation's items declare (all of them are stored)."""

COLLECTIONS = {
    "theia": ["sentinel-2-l2a", "sentinel2-l2a-theia"],
    "odatis": ["insitu-water-quality", "ocean-colour-daily"],
    "dinamis": ["pleiades-ms"],
    "aeris": ["aerosol-optical-depth-daily"],
}


# -- the stored schemas ---------------------------------------------------------------------


def _stored() -> list[str]:
    return sorted(
        p.relative_to(SCHEMAS).as_posix()
        for p in SCHEMAS.rglob("*")
        if p.is_file() and p != SOURCES
    )


def test_every_stored_schema_is_listed_with_origin_licence_size_and_digest() -> None:
    rows = {}
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        if found := ROW.match(line):
            rows[found["file"]] = [c.strip() for c in found["cells"].split("|")]
    files = _stored()
    assert len(files) >= 17
    assert sorted(rows) == files
    for name, (origin, licence, size, digest, _what) in rows.items():
        data = (SCHEMAS / name).read_bytes()
        assert "github.com" in origin and re.search(r"`[0-9a-f]{40}`", origin), name
        assert licence.startswith(("Apache-2.0", "MIT")), name
        assert int(size) == len(data), name
        assert digest == hashlib.sha256(data).hexdigest(), name


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_schema_sits_at_its_url_and_every_reference_is_stored() -> None:
    for name in _stored():
        schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        url = f"https://{name}"
        declared = schema.get("$id", "").rstrip("#")
        # published as ".../commonjson" (sic) in STAC 1.1.0: kept byte-identical (SOURCES.md)
        assert declared in (url, url.replace("common.json", "commonjson")), name
        for ref in _refs(schema):
            target = urljoin(url, ref).split("#")[0]
            if not target or target == url:
                continue
            assert local_schema(target) is not None or target in stac_schemas.META_SCHEMAS, (
                f"{name}: $ref {ref} is not stored"
            )


# -- the sample federation, offline ---------------------------------------------------------


def _static_documents(sample_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(sample_dir.rglob("*.json")):
        if "truth" in path.relative_to(sample_dir).parts or path.name == "references.json":
            continue  # the generator's record; kerchunk references (not STAC documents)
        documents.append((path.relative_to(sample_dir).as_posix(), json.loads(path.read_text())))
    return documents


def test_every_document_of_the_sample_federation_validates(sample_dir: Path) -> None:
    documents = _static_documents(sample_dir)
    kinds = [d.get("type") for _, d in documents]
    assert kinds.count("Catalog") == 4 and kinds.count("Collection") == 6
    assert kinds.count("Feature") == 16 + 16 + 3 + 7 + 92 + 92
    declared = {url for _, d in documents for url in d.get("stac_extensions", [])}
    assert declared == EXTENSIONS
    assert {d["stac_version"] for _, d in documents} == {"1.1.0"}
    failures = {name: [str(v) for v in validate(d)] for name, d in documents}
    assert not {k: v for k, v in failures.items() if v}


def test_the_items_of_the_served_geoparquet_files_validate(sample_dir: Path) -> None:
    from lab import read_catalogue, read_centres_file

    centres = read_centres_file(sample_dir / "centres.yaml")
    seen = 0
    for centre in centres.values():
        for item in read_catalogue(centre):
            document = item.to_dict(include_self_link=False, transform_hrefs=False)
            assert validate(document) == [], (centre.name, item.id)
            seen += 1
    assert seen >= 25


def _scene(sample_dir: Path) -> dict[str, Any]:
    path = next((sample_dir / "theia" / "sentinel-2-l2a").glob("S2*/S2*.json"))
    return dict(json.loads(path.read_text()))


def test_a_broken_item_is_rejected_with_the_offending_path(sample_dir: Path) -> None:
    item = _scene(sample_dir)
    assert validate(item) == []
    broken = copy.deepcopy(item)
    broken["assets"]["red"]["raster:bands"][0]["data_type"] = "uint17"
    broken["properties"]["datetime"] = "yesterday"
    broken["properties"]["eo:cloud_cover"] = 140
    del broken["assets"]["blue"]["href"]
    found = {(v.path, v.schema.split("/")[-3]) for v in validate(broken)}
    assert ("$.assets.red.raster:bands[0].data_type", "raster") in found
    assert ("$.properties.datetime", "item-spec") in found  # the core item schema
    assert ("$.properties.eo:cloud_cover", "eo") in found
    assert ("$.assets.blue", "item-spec") in found  # href is required
    messages = {str(v) for v in validate(broken)}
    assert any("'uint17' is not one of" in m for m in messages)


def test_a_schema_that_is_not_stored_is_an_error_not_a_download(sample_dir: Path) -> None:
    item = _scene(sample_dir)
    item["stac_extensions"] = [*item["stac_extensions"], "https://example.invalid/x/schema.json"]
    with pytest.raises(SchemaNotStoredError, match=re.escape("example.invalid/x/schema.json")):
        validate(item)
    item["stac_version"] = "0.9.0"
    with pytest.raises(SchemaNotStoredError, match=re.escape("v0.9.0/item-spec")):
        validate(item)


# -- the lab's STAC APIs, live --------------------------------------------------------------


@pytest.fixture(scope="module")
def live(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFederation]:
    with stac_servers(sample_dir / "centres.yaml", tmp_path_factory.mktemp("validation")) as f:
        yield f


CONFORMANCE = {
    "core": r"https://api\.stacspec\.org/v1\.[0-9.]+/core",
    "collections": r"https://api\.stacspec\.org/v1\.[0-9.]+/collections",
    "features": r"https://api\.stacspec\.org/v1\.[0-9.]+/ogcapi-features",
    "item-search": r"https://api\.stacspec\.org/v1\.[0-9.]+/item-search",
    "filter": r"https://api\.stacspec\.org/v1\.[0-9.]+/item-search#filter",
    "item-search#sort": r"https://api\.stacspec\.org/v1\.[0-9.]+/item-search#sort",
    "item-search#fields": r"https://api\.stacspec\.org/v1\.[0-9.]+/item-search#fields",
}
"""stac-api-validator's ``--conformance`` choices, by the URI an API declares for them."""

KNOWN_WARNINGS = {
    # best practices of stac-check, not schema errors: the sample's collections carry no
    # summaries, and rustac serve's own links (self, root, items) carry no titles
    "A STAC collection should contain a summaries field": "no summaries",
    # Sentinel-2 and Pleiades ids keep their products' upper-case names, as Earth Search's do
    "Identifiers should consist of only lowercase characters": "upper-case ids",
    # the validator's ids-with-bbox check searches 20,20,21,21: nothing of the sample is there
    "bbox=20,20,21,21 to validate ids does not override": "no item at 20,20",
}


def _conformance(root: str, headers: dict[str, str] | None = None) -> list[str]:
    landing = requests.get(root, headers=headers, timeout=30).json()
    declared = landing["conformsTo"]
    return sorted(
        name
        for name, pattern in CONFORMANCE.items()
        if any(re.fullmatch(pattern, uri) for uri in declared)
    )


def _run_validator(
    root: str, collection: str, point: list[float], headers: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    command = [sys.executable, str(WRAPPER), "--log-level", "WARNING", "--root-url", root]
    for name in _conformance(root, headers):
        command += ["--conformance", name]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    command += ["--collection", collection]
    command += ["--geometry", json.dumps({"type": "Point", "coordinates": point})]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=HERE)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("centre", sorted(COLLECTIONS))
def test_each_centre_api_passes_stac_api_validator(live: LiveFederation, centre: str) -> None:
    root = live.urls[centre]
    assert _conformance(root) == ["collections", "core", "features", "item-search"]
    _assert_passes(
        _run_validator(root, COLLECTIONS[centre][0], _first_point(root, COLLECTIONS[centre][0]))
    )


def _first_point(root: str, collection: str, headers: dict[str, str] | None = None) -> list[float]:
    """A vertex of the first item of ``collection`` (the validator's intersects test)."""
    page = requests.post(
        root + "search", json={"limit": 1, "collections": [collection]}, headers=headers, timeout=30
    )
    point = page.json()["features"][0]["geometry"]["coordinates"]
    while isinstance(point[0], list):
        point = point[0]
    return [float(point[0]), float(point[1])]


def _assert_passes(result: subprocess.CompletedProcess) -> None:
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "Errors: none" in result.stdout, report
    assert "offline: refused" not in result.stderr, report
    warnings = [line for line in result.stdout.splitlines() if line.startswith("- ")]
    unknown = [w for w in warnings if not any(k in w for k in KNOWN_WARNINGS)]
    assert not unknown, report


@pytest.mark.integration
@pytest.mark.slow
def test_what_the_apis_serve_validates_against_the_stored_schemas(live: LiveFederation) -> None:
    served = 0
    for centre, root in live.urls.items():
        collections = requests.get(root + "collections", timeout=30).json()["collections"]
        assert [c["id"] for c in collections] == COLLECTIONS[centre]
        for collection in collections:
            assert validate(collection) == [], (centre, collection["id"])
        page = requests.post(root + "search", json={"limit": 10_000}, timeout=30).json()
        assert page["features"] and not any(link["rel"] == "next" for link in page["links"])
        for item in page["features"]:
            assert validate(item) == [], (centre, item["id"])
            served += 1
    assert served >= 25


@pytest.mark.integration
@pytest.mark.slow
def test_a_limit_above_the_maximum_gets_the_maximum_not_an_error(live: LiveFederation) -> None:
    root = live.urls["theia"]
    everything = requests.post(root + "search", json={"limit": 10_000}, timeout=30).json()
    ids = [f["id"] for f in everything["features"]]
    assert len(ids) == 16 + 16  # Sen2Cor-like and MAJA
    sen2cor = [i for i in ids if i.startswith("S2")]
    assert len(sen2cor) == 16
    for response, expected in (
        (requests.get(root + "search", params={"limit": 1_000_000}, timeout=30), ids),
        (requests.post(root + "search", json={"limit": 100_000}, timeout=30), ids),
        (
            requests.get(root + "collections/sentinel-2-l2a/items?limit=100000", timeout=30),
            sen2cor,
        ),
    ):
        assert response.status_code == 200, response.text
        assert sorted(f["id"] for f in response.json()["features"]) == sorted(expected)
    refused = requests.get(root + "search", params={"limit": 0}, timeout=30)
    assert refused.status_code == 400


def test_the_offline_wrapper_answers_stored_schemas_and_refuses_the_rest() -> None:
    code = (
        "import requests, urllib.request, stac_api_validator_offline as o\n"
        "o.install()\n"
        "url = 'https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json'\n"
        "print(requests.get(url, timeout=5).json()['$id'])\n"
        "print(len(urllib.request.urlopen(url).read()))\n"
        "for get in (lambda u: requests.get(u, timeout=5), urllib.request.urlopen):\n"
        "    try:\n"
        "        get('https://example.invalid/schema.json')\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=HERE
    )
    assert result.returncode == 0, result.stderr
    size = (SCHEMAS / "schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json").stat()
    assert result.stdout.split() == [
        "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json",
        str(size.st_size),
        "ConnectionError",
        "URLError",
    ]
    assert result.stderr.count("offline: refused https://example.invalid/schema.json") == 2


@pytest.fixture(scope="module")
def hub_lab(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``earthlab hub up`` on the sample federation."""
    with running_lab(sample_dir / "centres.yaml", tmp_path_factory.mktemp("hub")) as lab:
        yield lab


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("centre", ["theia", "odatis"])
def test_the_hub_front_passes_stac_api_validator(hub_lab: Any, centre: str) -> None:
    """``earthlab hub up``: an open centre's STAC API through the lab's front."""
    root = hub_lab.catalogue_url(centre)
    assert root.startswith(f"http://127.0.0.1:{hub_lab.front_port}/stac/")
    assert _conformance(root) == ["collections", "core", "features", "item-search"]
    _assert_passes(
        _run_validator(root, COLLECTIONS[centre][0], _first_point(root, COLLECTIONS[centre][0]))
    )


@pytest.mark.integration
@pytest.mark.slow
def test_the_restricted_service_passes_stac_api_validator(hub_lab: Any) -> None:
    """``earthlab hub up``: dinamis through its hub-authenticated restricted-data service."""
    hub = Hub(hub_lab)
    hub.create_user("erin")
    hub.add_to_group("dinamis", ["erin"])
    scopes = ["access:services!service=restricted-dinamis", access_scope("dinamis")]
    headers = {"Authorization": f"token {hub.token('erin', scopes)}"}
    root = hub_lab.catalogue_url("dinamis")
    assert "/services/restricted-dinamis/" in root
    point = _first_point(root, COLLECTIONS["dinamis"][0], headers)
    _assert_passes(_run_validator(root, COLLECTIONS["dinamis"][0], point, headers))
