"""Centres file parsing and federated search over small hand-built catalogues.

The federation here is built by the test itself so that every expected number is known:
centre ``alpha`` (stac-geoparquet) holds items a0..a4, ``beta`` (static JSON catalogue)
holds b0..b2, ``mirror`` (stac-geoparquet) holds copies of a1 and a2 plus m0, and
``broken`` points at a file that does not exist.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pystac
import pytest
import rustac
import yaml

import lab
from lab._adapters import AdapterResult
from lab._catalog import FederatedCatalog
from lab._centres import read_centres_file

DAY0 = dt.datetime(2022, 1, 1, 10, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True, params=["in-memory", "duckdb"])
def geoparquet_search(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with both ways of searching a stac-geoparquet file: small files are read
    whole and filtered in Python, large ones searched with DuckDB (forced here)."""
    if request.param == "duckdb":
        monkeypatch.setattr("lab._adapters._geoparquet.SMALL_FILE_ITEMS", 0)
    return str(request.param)


def make_item(
    item_id: str, collection: str, day: int, lon: float = 3.6, lat: float = 43.4
) -> pystac.Item:
    geometry = {
        "type": "Polygon",
        "coordinates": [
            [
                [lon - 0.05, lat - 0.05],
                [lon + 0.05, lat - 0.05],
                [lon + 0.05, lat + 0.05],
                [lon - 0.05, lat + 0.05],
                [lon - 0.05, lat - 0.05],
            ]
        ],
    }
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=[lon - 0.05, lat - 0.05, lon + 0.05, lat + 0.05],
        datetime=DAY0 + dt.timedelta(days=day),
        properties={"eo:cloud_cover": float(day)},
        collection=collection,
    )
    item.add_asset("red", pystac.Asset(href=f"data/{item_id}/red.tif", roles=["data"]))
    return item


def write_geoparquet(path: Path, items: list[pystac.Item]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rustac.write_sync(str(path), [i.to_dict(transform_hrefs=False) for i in items])


def write_static(directory: Path, items: list[pystac.Item], collection_id: str) -> Path:
    catalog = pystac.Catalog(id="beta", description="static test catalogue")
    extent = pystac.Extent(
        pystac.SpatialExtent([[3.0, 43.0, 4.0, 44.0]]),
        pystac.TemporalExtent([[DAY0, DAY0 + dt.timedelta(days=30)]]),
    )
    collection = pystac.Collection(id=collection_id, description="c", extent=extent)
    catalog.add_child(collection)
    for item in items:
        collection.add_item(item)
    catalog.normalize_hrefs(str(directory))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return directory / "catalog.json"


@pytest.fixture()
def federation(tmp_path: Path) -> Path:
    alpha = [make_item(f"a{i}", "s2", day=2 * i) for i in range(5)]
    mirror = [
        make_item("a1", "s2", day=2),
        make_item("a2", "s2", day=4),
        make_item("m0", "s2", day=5),
    ]
    beta = [make_item(f"b{i}", "insitu", day=2 * i + 1, lon=3.62) for i in range(3)]
    write_geoparquet(tmp_path / "alpha" / "items.parquet", alpha)
    write_geoparquet(tmp_path / "mirror" / "items.parquet", mirror)
    write_static(tmp_path / "beta", beta, "insitu")
    (tmp_path / "centres.yaml").write_text(
        """
version: 1
centres:
  - name: alpha
    title: Alpha
    catalog: {kind: stac-geoparquet, href: alpha/items.parquet}
    collections: [s2]
    priority: 10
  - name: mirror
    title: Mirror of alpha
    catalog: {kind: stac-geoparquet, href: mirror/items.parquet}
    collections: [s2]
    priority: 50
  - name: beta
    title: Beta
    catalog: {kind: stac-static, href: beta/catalog.json}
    collections: [insitu]
  - name: broken
    title: Broken
    catalog: {kind: stac-geoparquet, href: broken/items.parquet, retries: 0}
""",
        encoding="utf-8",
    )
    return tmp_path / "centres.yaml"


def test_search_merges_all_centres_sorted_and_tagged(federation: Path) -> None:
    result = lab.catalog(federation).search()
    ids = [item.id for item in result]
    # alpha a0..a4 (days 0,2,4,6,8), beta b0..b2 (days 1,3,5), mirror m0 (day 5); a1/a2 kept once;
    # b2 and m0 share day 5 and sort by collection then id.
    assert ids == ["a0", "b0", "a1", "b1", "a2", "b2", "m0", "a3", "a4"]  # ties: by collection
    centres = {item.id: item.properties["earthlab:centre"] for item in result}
    assert centres["a1"] == "alpha" and centres["a2"] == "alpha"  # preferred centre wins
    assert centres["m0"] == "mirror" and centres["b1"] == "beta"
    report = result.federation
    assert (
        report["alpha"].status == "ok"
        and report["alpha"].returned == 5
        and report["alpha"].kept == 5
    )
    assert report["mirror"].duplicates == 2 and report["mirror"].kept == 1
    assert report["beta"].matched == 3
    assert report["broken"].status == "missing"
    assert "does not exist" in report["broken"].error
    assert result.missing == {"broken": report["broken"].error}


def test_asset_hrefs_are_resolved_against_the_centre(federation: Path) -> None:
    result = lab.catalog(federation).search(ids=["a3", "b2"])
    hrefs = {item.id: item.assets["red"].href for item in result}
    assert hrefs["a3"] == str(federation.parent / "alpha" / "data" / "a3" / "red.tif")
    assert Path(hrefs["b2"]).is_absolute() and hrefs["b2"].endswith("b2/data/b2/red.tif")


def test_search_filters_by_collection_datetime_bbox_and_limit(federation: Path) -> None:
    fed = lab.catalog(federation)
    s2 = fed.search(collections="s2", datetime="2022-01-03/2022-01-07")
    # days 2, 4, 5, 6 -> a1, a2, m0, a3 (beta is skipped: it declares only 'insitu')
    assert [i.id for i in s2] == ["a1", "a2", "m0", "a3"]
    assert s2.federation["beta"].status == "skipped"
    day = fed.search(datetime="2022-01-02")
    assert [i.id for i in day] == ["b0"]
    far = fed.search(bbox=[10, 10, 11, 11])
    assert len(far) == 0 and far.federation["alpha"].status == "ok"
    limited = fed.search(collections=["s2", "insitu"], limit=3)
    assert [i.id for i in limited] == ["a0", "b0", "a1"]
    assert sum(r.kept for r in limited.federation.values()) == 3


def test_a_cql2_filter_means_the_same_on_static_and_geoparquet_centres(federation: Path) -> None:
    fed = lab.catalog(federation)
    # eo:cloud_cover is the day number: a0..a4 = 0,2,4,6,8 (alpha), b0..b2 = 1,3,5 (beta)
    cloudy = {"op": ">=", "args": [{"property": "eo:cloud_cover"}, 3]}
    result = fed.search(filter=cloudy, centres=["alpha", "beta"])
    assert [i.id for i in result] == ["b1", "a2", "b2", "a3", "a4"]
    assert result.federation["beta"].matched == 2  # evaluated by the static adapter
    # a property the items lack matches nothing (CQL2 NULL semantics), as on a server
    absent = {"op": "=", "args": [{"property": "s2:tile"}, "31TEJ"]}
    assert len(fed.search(filter=absent, centres=["beta"])) == 0
    # 'or' with a datetime interval: rustac would drop the parentheses, so the adapter
    # evaluates this filter itself; days 2..8 and (cloud < 3 or cloud > 7) -> a1 (2), a4 (8)
    either = {
        "op": "or",
        "args": [
            {"op": "<", "args": [{"property": "eo:cloud_cover"}, 3]},
            {"op": ">", "args": [{"property": "eo:cloud_cover"}, 7]},
        ],
    }
    found = fed.search(filter=either, datetime="2022-01-03/2022-01-10", centres=["alpha"])
    assert [i.id for i in found] == ["a1", "a4"]
    limited = fed.search(filter=either, centres=["alpha"], limit=2)
    assert [i.id for i in limited] == ["a0", "a1"]
    with pytest.raises(lab.ConfigurationError, match="not valid CQL2-JSON"):
        fed.search(filter={"op": "<", "args": [1]})
    with pytest.raises(lab.ConfigurationError, match="must be a CQL2-JSON dict"):
        fed.search(filter="eo:cloud_cover < 3")


def test_only_some_centres(federation: Path) -> None:
    result = lab.catalog(federation).search(centres=["beta"])
    assert [i.id for i in result] == ["b0", "b1", "b2"]
    assert list(result.federation) == ["beta"]
    with pytest.raises(lab.UnknownCentreError, match="known centres: alpha, mirror, beta, broken"):
        lab.catalog(federation).search(centres=["gamma"])


class Blocked:
    """An adapter whose search blocks until the test releases it, recording that it started and
    whether it ever returned; ``release.wait``'s timeout only guards against a hang."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.left = threading.Event()

    def search(self, query):
        self.entered.set()
        try:
            self.release.wait(timeout=120)
            return AdapterResult(items=[])
        finally:
            self.left.set()


def with_catalog_timeouts(federation: Path, timeouts: dict[str, float]) -> Path:
    """A copy of the centres file with ``catalog.timeout`` set per centre."""
    document = yaml.safe_load(federation.read_text())
    for centre in document["centres"]:
        centre["catalog"]["timeout"] = timeouts[centre["name"]]
    path = federation.with_name("timeouts.yaml")
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_slow_centre_times_out_without_sinking_others(federation: Path) -> None:
    # beta never answers within its 0.5 s; the others get a budget that only guards against a
    # hang, so how fast this machine is decides nothing
    generous = {"alpha": 120.0, "mirror": 120.0, "broken": 120.0, "beta": 0.5}
    fed = lab.catalog(with_catalog_timeouts(federation, generous))
    beta = fed._adapters["beta"] = Blocked()
    try:
        result = fed.search()
        # the search came back while beta was still searching: it did not wait for it
        assert beta.entered.is_set() and not beta.left.is_set()
    finally:
        beta.release.set()
    report = result.federation
    assert report["beta"].status == "missing"
    assert report["beta"].error == "timed out after 0.5 s" and report["beta"].seconds >= 0.5
    assert report["alpha"].status == report["mirror"].status == "ok"
    assert report["broken"].status == "missing" and "timed out" not in report["broken"].error
    assert [i.id for i in result] == ["a0", "a1", "a2", "m0", "a3", "a4"]
    assert beta.left.wait(timeout=120)  # released, the abandoned search ends


def test_the_search_timeout_bounds_each_centre(federation: Path) -> None:
    fed = lab.catalog(federation)  # every centre's own timeout is the default 10 s
    beta = fed._adapters["beta"] = Blocked()
    try:
        result = fed.search(timeout=0.5, centres=["beta"])
        assert beta.entered.is_set() and not beta.left.is_set()
    finally:
        beta.release.set()
    report = result.federation["beta"]
    assert report.status == "missing" and report.error == "timed out after 0.5 s"
    assert report.seconds >= 0.5 and len(result) == 0
    assert beta.left.wait(timeout=120)


def test_transient_failures_are_retried_then_reported(federation: Path) -> None:
    fed = lab.catalog(federation)
    calls = {"n": 0}

    class Flaky:
        def search(self, query):
            calls["n"] += 1
            if calls["n"] < 2:
                raise ConnectionError("connection reset")
            return AdapterResult(items=[make_item("f0", "insitu", day=20)])

    fed._adapters["beta"] = Flaky()
    result = fed.search()
    assert calls["n"] == 2
    assert result.federation["beta"].attempts == 2 and result.federation["beta"].status == "ok"
    assert result[-1].id == "f0"


def test_invalid_search_arguments_name_the_argument(federation: Path) -> None:
    fed = lab.catalog(federation)
    with pytest.raises(lab.ConfigurationError, match="bbox"):
        fed.search(bbox=[1, 2, 3])
    with pytest.raises(lab.ConfigurationError, match="datetime"):
        fed.search(datetime="yesterday")
    with pytest.raises(lab.ConfigurationError, match="limit"):
        fed.search(limit=-1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("centres: []", "lists no centre"),
        ("version: 9\ncentres: []", "version 9"),
        ("centres:\n  - name: x\n    title: X\n", "'catalog' is required"),
        (
            "centres:\n  - name: Bad_Name\n    catalog: {kind: stac-api, href: http://x}\n",
            "Bad_Name",
        ),
        ("centres:\n  - name: x\n    catalog: {kind: ftp, href: x}\n", "catalog.kind 'ftp'"),
        (
            "centres:\n  - name: x\n    catalog: {kind: stac-api, href: http://x, colour: red}\n",
            "catalog: unknown field(s) colour",
        ),
        (
            "centres:\n  - name: x\n    catalog: {kind: stac-api, href: http://x}\n    gateway: {address: tcp://h}\n",
            "gateway.address",
        ),
        (
            "centres:\n  - name: x\n    catalog: {kind: stac-api, href: http://x}\n"
            "  - name: x\n    catalog: {kind: stac-api, href: http://y}\n",
            "repeated: x",
        ),
        ("centres: {a: 1}", "'centres' must be a list"),
        (
            "centres:\n  - name: x\n    catalog: {kind: stac-api, href: http://x}\n    colour: red\n",
            "centre 'x': unknown field(s) colour",
        ),
        ("[unclosed", "not valid YAML"),
    ],
)
def test_malformed_centres_file_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "centres.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(lab.CentresFileError) as info:
        read_centres_file(path)
    assert message in str(info.value)


def test_centres_from_argument_env_and_gateway_override(
    federation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARTHLAB_CENTRES", str(federation))
    monkeypatch.setenv(
        "EARTHLAB_GATEWAY_ALPHA", "http://127.0.0.1:9999/services/dask-gateway-alpha"
    )
    found = lab.centres()
    assert list(found) == ["alpha", "mirror", "beta", "broken"]
    assert found["alpha"].gateway is not None
    assert found["alpha"].gateway.address.endswith("dask-gateway-alpha")
    assert found["beta"].gateway is None
    assert found["alpha"].catalog.href == str(federation.parent / "alpha" / "items.parquet")
    with pytest.raises(lab.UnknownCentreError, match="unknown centre 'zeta'"):
        found["zeta"]
    monkeypatch.setenv("EARTHLAB_CENTRES", str(federation.parent / "nope.yaml"))
    with pytest.raises(lab.CentresFileError, match="does not exist"):
        lab.centres()


def test_cli_search_json_and_table(federation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lab._cli import main

    assert (
        main(
            [
                "search",
                "--centres",
                str(federation),
                "--collections",
                "s2",
                "--max-items",
                "2",
                "--json",
            ]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in document["features"]] == ["a0", "a1"]
    assert {r["centre"]: r["status"] for r in document["federation"]}["broken"] == "missing"
    assert main(["search", "--centres", str(federation), "--datetime", "2022-01-02"]) == 0
    out = capsys.readouterr().out
    assert "b0" in out and "beta" in out and "broken" in out and "missing" in out
    with pytest.raises(SystemExit) as exited:  # a bad argument is argparse's error: status 2
        main(["search", "--centres", str(federation), "--bbox", "1,2,3"])
    assert exited.value.code == 2
    assert "argument --bbox: bbox must be four numbers" in capsys.readouterr().err


def test_federated_catalog_repr(federation: Path) -> None:
    fed = FederatedCatalog(read_centres_file(federation))
    assert "alpha, mirror, beta, broken" in repr(fed)


def test_small_geoparquet_files_are_searched_without_starting_duckdb(
    federation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lab._adapters._geoparquet.SMALL_FILE_ITEMS", 5000)
    monkeypatch.setattr("lab._adapters._geoparquet._idle_clients", [])

    def no_duckdb(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DuckDB client was created for a 5-item file")

    monkeypatch.setattr(rustac, "DuckdbClient", no_duckdb)
    result = lab.catalog(federation).search(collections="s2", datetime="2022-01-03/2022-01-07")
    assert [i.id for i in result] == ["a1", "a2", "m0", "a3"]
    assert result.federation["alpha"].matched == 3  # a1, a2, a3 (days 2, 4, 6)
    assert result.federation["mirror"].matched == 3 and result.federation["mirror"].duplicates == 2


def test_describe_aligns_columns_for_any_centre_name_length() -> None:
    from lab._catalog import CentreReport, SearchResult
    from lab._query import SearchQuery

    long_name = "observatoire-oceanologique-vlfr"  # 32 characters
    reports = {
        "theia": CentreReport("theia", "ok", matched=16, kept=16, seconds=0.1),
        long_name: CentreReport(long_name, "missing", error="timed out after 1.0 s"),
        "odatis": CentreReport("odatis", "ok", matched=123456, kept=7, seconds=0.2),
    }
    text = SearchResult([], reports, SearchQuery.build()).describe()
    rows = text.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["theia", long_name, "odatis"]
    for column in ("ok", "matched=", "kept="):
        starts = {row.index(column) for row in rows if column in row}
        assert len(starts) == 1, (column, text)
    assert rows[1].index("missing") == rows[0].index("ok")
    assert rows[1].endswith("timed out after 1.0 s")


# --- sortby (issue 15, item 2) -------------------------------------------------------------


def test_sortby_orders_the_merge_and_the_limit_on_every_kind_of_catalogue(federation: Path) -> None:
    fed = lab.catalog(str(federation))
    # alpha and mirror (stac-geoparquet, both search paths) and beta (static): cloud cover is
    # the day number; a1 and a2 are in both alpha and mirror, alpha preferred
    result = fed.search(collections="s2", sortby="-eo:cloud_cover")
    assert [i.id for i in result] == ["a4", "a3", "m0", "a2", "a1", "a0"]
    assert {i.id: i.properties["earthlab:centre"] for i in result}["a1"] == "alpha"
    limited = fed.search(collections="s2", sortby="-properties.eo:cloud_cover", limit=3)
    assert [i.id for i in limited] == ["a4", "a3", "m0"]
    # day 5: b2 (insitu) and m0 (s2) at the same instant, ties by collection then id
    latest = fed.search(sortby=[{"field": "datetime", "direction": "desc"}], limit=4)
    assert [i.id for i in latest] == ["a4", "a3", "b2", "m0"]
    two_keys = fed.search(collections="s2", sortby=["+eo:cloud_cover", "-id"], limit=2)
    assert [i.id for i in two_keys] == ["a0", "a1"]
    # the default stays the merge order, earliest first
    assert [i.id for i in fed.search(collections="s2", limit=2)] == ["a0", "a1"]


def test_cli_sortby(federation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lab._cli import main

    command = ["search", "--centres", str(federation), "--collections", "s2", "--json"]
    assert main([*command, "--sortby=-eo:cloud_cover", "--max-items", "2"]) == 0
    assert [f["id"] for f in json.loads(capsys.readouterr().out)["features"]] == ["a4", "a3"]
    with pytest.raises(SystemExit) as exited:
        main([*command, "--sortby", "+"])
    assert exited.value.code == 2
    assert "sortby: empty or padded field name ''" in capsys.readouterr().err
