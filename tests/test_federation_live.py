"""Federated search across live STAC APIs on loopback: the sample's three centres, each served
by ``rustac serve`` (as ``earthlab hub up`` serves them), searched through pystac-client.

What is expected comes from the sample's own files (its static catalogues and COGs), not from
the servers.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pystac
import pystac_client  # noqa: F401  (imported up front: first-search import time is not latency)
import pytest
import requests
from stac_servers import stac_servers

import lab
from lab._adapters import _stac_api
from lab._cli import main

pytestmark = [pytest.mark.integration]

CENTRES = ("theia", "odatis", "dinamis")


def static_items(sample_dir: Path, centre: str) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(sample_dir / centre / "catalog.json"))
    return list(catalog.get_items(recursive=True))


def when(item: pystac.Item) -> str:
    return (item.datetime or item.common_metadata.start_datetime).isoformat()


@pytest.fixture(scope="module")
def live(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with stac_servers(
        sample_dir / "centres.yaml", tmp_path_factory.mktemp("live"), catalog_options={"retries": 1}
    ) as federation:
        yield federation


def test_three_live_stac_apis_merged_sorted_and_tagged(live, sample_dir: Path) -> None:
    result = lab.catalog(live.centres_file).search()
    expected = {c: static_items(sample_dir, c) for c in CENTRES}
    assert {c: len(v) for c, v in expected.items()} == {"theia": 16, "odatis": 7, "dinamis": 3}
    assert len(result) == 26
    for centre in CENTRES:
        report = result.federation[centre]
        assert report.status == "ok", report
        assert report.matched == report.returned == report.kept == len(expected[centre])
        assert {i.id for i in result if i.properties["earthlab:centre"] == centre} == {
            i.id for i in expected[centre]
        }
    stamps = [(when(i), i.collection_id, i.id) for i in result]
    assert stamps == sorted(stamps)
    assert result.federation_missing == []


def test_live_assets_are_the_centres_files(live, sample_dir: Path) -> None:
    result = lab.catalog(live.centres_file).search(ids=["S2B_31TEJ_20220215_0_L2A"])
    (item,) = result
    href = item.assets["red"].href
    assert href.startswith("http://127.0.0.1:") and href.endswith(
        "/theia/sentinel-2-l2a/S2B_31TEJ_20220215_0_L2A/red.tif"
    )
    local = sample_dir / "theia" / "sentinel-2-l2a" / "S2B_31TEJ_20220215_0_L2A" / "red.tif"
    body = requests.get(href, timeout=30).content
    assert hashlib.sha256(body).digest() == hashlib.sha256(local.read_bytes()).digest()
    part = requests.get(href, headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206 and part.content == local.read_bytes()[100:200]


def test_filters_agree_with_the_offline_catalogues(
    live, sample_dir: Path, sample_truth: dict
) -> None:
    box = (3.55, 43.35, 3.62, 43.40)
    query = {"bbox": list(box), "datetime": "2021-11-01/2022-02-28"}
    online = lab.catalog(live.centres_file).search(**query)
    offline = lab.catalog(sample_dir / "centres.yaml").search(**query)
    assert offline.federation["dinamis"].status == "restricted"  # never read from a local file
    open_ids = [i.id for i in online if i.properties["earthlab:centre"] != "dinamis"]
    assert open_ids == [i.id for i in offline]
    scenes = [
        a["item_id"]
        for a in sample_truth["acquisitions"]
        if "2021-11-01" <= a["datetime"][:10] <= "2022-02-28"
    ]
    # every station's record spans the whole interval: the box decides
    stations = [
        s["item_id"]
        for s in sample_truth["stations"]
        if box[0] <= s["lon"] <= box[2] and box[1] <= s["lat"] <= box[3]
    ]
    assert len(scenes) == 8 and sorted(stations) == [
        "THAU01-water-quality",
        "THAU03-water-quality",
    ]
    assert sorted(open_ids) == sorted(scenes + stations)
    # dinamis's window (near Bouzigues) is east of the box: its items do not match
    assert online.federation["dinamis"].matched == 0


def test_rustac_pagination_is_followed(live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stac_api, "PAGE_SIZE", 5)
    result = lab.catalog(live.centres_file).search(collections="sentinel-2-l2a", centres=["theia"])
    assert len(result) == 16 and result.federation["theia"].matched == 16
    assert len({i.id for i in result}) == 16


def test_mirrored_items_are_kept_from_the_preferred_centre(live, tmp_path: Path) -> None:
    document = json.loads(json.dumps(__import__("yaml").safe_load(live.centres_file.read_text())))
    theia = next(c for c in document["centres"] if c["name"] == "theia")
    for name, priority in (("mirror-low", 200), ("mirror-high", 1)):
        document["centres"].append({**theia, "name": name, "priority": priority})
    path = tmp_path / "mirrored.yaml"
    path.write_text(json.dumps(document))
    result = lab.catalog(path).search(collections="sentinel-2-l2a")
    assert len(result) == 16
    assert {i.properties["earthlab:centre"] for i in result} == {"mirror-high"}
    report = result.federation
    assert report["mirror-high"].kept == 16
    assert report["theia"].duplicates == 16 and report["mirror-low"].duplicates == 16


@pytest.mark.slow
def test_slow_centres_cost_the_slowest_not_the_sum(sample_dir: Path, tmp_path: Path) -> None:
    delays = {"theia": 0.2, "odatis": 0.4, "dinamis": 0.9}  # seconds per answer
    with stac_servers(sample_dir / "centres.yaml", tmp_path, delays=delays) as slow:
        federated = lab.catalog(slow.centres_file)
        federated.search()  # warm up (imports, connections)
        started = time.monotonic()
        parallel = federated.search()
        parallel_s = time.monotonic() - started
        one_by_one = lab.catalog(slow.centres_file, max_workers=1)
        started = time.monotonic()
        sequential = one_by_one.search()
        sequential_s = time.monotonic() - started
        started = time.monotonic()
        cut = federated.search(timeout=1.3)
        cut_s = time.monotonic() - started
    seconds = {c: r.seconds for c, r in parallel.federation.items()}
    # two answers per search (landing page, one page of results): at least twice the delay
    assert all(seconds[c] >= 2 * d for c, d in delays.items()), seconds
    assert len(parallel) == len(sequential) == 26
    slowest = max(seconds.values())
    assert parallel_s < slowest + 0.4, (parallel_s, seconds)
    assert sequential_s > sum(2 * d for d in delays.values())  # 3 s: one after another
    assert parallel_s < 0.6 * sequential_s
    assert cut.federation["dinamis"].status == "missing"  # 1.8 s needed, 1.3 s allowed
    assert "timed out after 1.3 s" in cut.federation["dinamis"].error
    assert cut.federation["theia"].status == cut.federation["odatis"].status == "ok"
    assert 1.3 <= cut_s < 1.7  # the budget, not the slow centre's 1.8 s


def test_a_centre_stopped_mid_test_is_reported_missing(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with stac_servers(
        sample_dir / "centres.yaml", tmp_path, catalog_options={"retries": 2}
    ) as federation:
        before = lab.catalog(federation.centres_file).search()
        assert before.federation_missing == [] and len(before) == 26
        federation.stop("stac-odatis")
        started = time.monotonic()
        after = lab.catalog(federation.centres_file).search()
        elapsed = time.monotonic() - started
        assert main(["search", "--centres", str(federation.centres_file), "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
    report = after.federation["odatis"]
    assert report.status == "missing" and report.attempts == 3  # 1 + 2 retries
    assert report.error.startswith(f"ConnectionError: {federation.urls['odatis']} answered 502")
    assert "the STAC API does not answer" in report.error
    assert after.federation_missing == ["odatis"] and after.missing == {"odatis": report.error}
    assert {i.properties["earthlab:centre"] for i in after} == {"theia", "dinamis"}
    assert len(after) == 16 + 3
    assert elapsed < 3.0  # refused connections, two short backoffs
    assert document["federation:missing"] == ["odatis"]
    statuses = {r["centre"]: r["status"] for r in document["federation"]}
    assert statuses == {"theia": "ok", "odatis": "missing", "dinamis": "ok"}
    assert len(document["features"]) == 19
