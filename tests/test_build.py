"""Cube builds on the sample federation: values, manifest, FAIR metadata, kill and resume,
incremental appends, failures, composites, COGs, discovery and intake.

Builds use a 4 km x 4 km window over the lagoon (200 x 200 pixels at 20 m), three bands and
16 regions, so that each takes a few seconds. Every federation here is a static copy of the
sample's items written by the test, so the items of each time step are known exactly.
"""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
import xarray as xr
import yaml

import datacubes
import lab
from datacubes._grid import crop, spec_geobox

ROOT = Path(__file__).resolve().parent.parent
BOUNDS = [547800, 4802860, 551800, 4806860]  # 200 x 200 pixels over the lagoon
SPEC = {
    "name": "thau-test",
    "title": "Thau test cube",
    "description": "A small window of the sample federation.",
    "licence": "CC-BY-4.0",
    "keywords": ["test"],
    "source": {"centres": ["theia"], "collections": ["sentinel-2-l2a"]},
    "bands": ["red", "nir", "scl"],
    "cloud_mask": "clouds",
    "grid": {"crs": "EPSG:32631", "resolution": 20, "bounds": BOUNDS},
    "target": {"chunks": {"time": 4, "y": 100, "x": 100}},
}
TILES = ["y0-100/x0-100", "y0-100/x100-200", "y100-200/x0-100", "y100-200/x100-200"]


# --- helpers (also used by test_build_s3.py) ------------------------------------------------


def sample_items(sample_dir: Path) -> list[pystac.Item]:
    """The sample's 16 Sentinel-2 items, time-sorted, with absolute asset hrefs."""
    catalog = pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json"))
    items = []
    for item in _sen2cor(catalog):
        copy = item.clone()
        for key, asset in copy.assets.items():
            asset.href = item.assets[key].get_absolute_href()
        items.append(copy)
    return sorted(items, key=lambda i: i.datetime)


def write_federation(
    root: Path,
    items: list[pystac.Item],
    *,
    sample_dir: Path | None = None,
    storage: dict | None = None,
) -> Path:
    """A centres file with ``theia`` (a static catalogue of ``items``), optionally ``odatis``
    (the sample's in-situ centre) and a ``cubes`` centre listing the cubes in ``storage``."""
    folder = root / "theia"
    shutil.rmtree(folder, ignore_errors=True)
    catalog = pystac.Catalog(id="theia-copy", description="copy of sample items")
    collection = pystac.Collection(
        id="sentinel-2-l2a",
        description="sample",
        extent=pystac.Extent(
            pystac.SpatialExtent([[3.5, 43.3, 3.75, 43.5]]), pystac.TemporalExtent([[None, None]])
        ),
    )
    for item in items:
        collection.add_item(item.clone())
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(folder))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    centres = [
        {
            "name": "theia",
            "catalog": {"kind": "stac-static", "href": "theia/catalog.json"},
            "collections": ["sentinel-2-l2a"],
        }
    ]
    if sample_dir is not None:
        centres.append(
            {
                "name": "odatis",
                "catalog": {
                    "kind": "stac-geoparquet",
                    "href": str(sample_dir / "odatis" / "items.parquet"),
                },
                "collections": ["insitu-water-quality"],
            }
        )
    if storage is not None:
        centres.append(
            {
                "name": "cubes",
                "catalog": {"kind": "cube-store", "href": storage["url"]},
                "storage": storage,
            }
        )
    path = root / "centres.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "centres": centres}))
    return path


def spec_file(folder: Path, **changes: object) -> Path:
    """The test spec (with top-level changes) as a YAML file."""
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}, allow_unicode=True))
    return path


def store_hashes(url: str, storage_options: dict | None = None) -> dict[str, str]:
    """SHA-256 of every array of a Zarr store, as stored (before any decoding)."""
    import zarr

    group = zarr.open_group(url, mode="r", storage_options=storage_options)
    hashes = {}
    for name, array in sorted(group.arrays()):
        values = array[...]
        if values.dtype.kind in "OTU":
            data = "\x1f".join(str(v) for v in np.ravel(values)).encode()
        else:
            data = np.ascontiguousarray(values).tobytes()
        digest = hashlib.sha256(data + f"{values.dtype.kind}{values.shape}".encode())
        hashes[name] = digest.hexdigest()
    return hashes


def files_state(*folders: Path) -> dict[str, tuple[int, int]]:
    """Modification time and size of every file under the folders."""
    return {
        str(p): (p.stat().st_mtime_ns, p.stat().st_size)
        for folder in folders
        if folder.exists()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def filled_regions(manifest: dict, block: int = 4) -> int:
    """Regions (4 steps x one tile) a manifest says are filled."""
    return sum(b - a for ranges in manifest["filled"].values() for a, b in ranges) // block


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def items(sample_dir: Path) -> list[pystac.Item]:
    found = sample_items(sample_dir)
    assert len(found) == 16
    return found


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, items, sample_dir) -> dict:
    """One uninterrupted build of the test spec; its store is not modified by tests."""
    root = tmp_path_factory.mktemp("clean")
    store = root / "store"
    centres = write_federation(root, items, sample_dir=sample_dir, storage={"url": str(store)})
    url = store / "thau-test.zarr"
    report = datacubes.build(spec_file(root), target=str(url), centres=str(centres), workers=2)
    return {
        "root": root,
        "url": url,
        "centres": centres,
        "report": report,
        "hashes": store_hashes(str(url)),
        "spec": spec_file(root),
    }


# --- a clean build --------------------------------------------------------------------------


def test_build_values_equal_the_loader(clean, items, sample_truth):
    report = clean["report"]
    assert report.complete and report.steps == 16 and report.steps_added == 16
    assert sorted(i.id for i in report.sources) == sorted(i.id for i in items)
    assert (report.regions_total, report.regions_written, report.regions_skipped) == (16, 16, 0)
    assert report.failed == {}
    cube = datacubes.open_cube(str(clean["url"]))
    gbox = spec_geobox(datacubes.read_spec(SPEC).grid)
    ref = datacubes.load(
        items,
        ["red", "nir", "scl"],
        mask="clouds",
        crs="EPSG:32631",
        resolution=20,
        bbox=[3.55, 43.36, 3.67, 43.43],
    )
    ref = crop(ref, gbox).compute()
    assert cube.sizes == {"time": 16, "y": 200, "x": 200}
    np.testing.assert_array_equal(cube.x.values, gbox.coords["x"].values)
    np.testing.assert_array_equal(cube.y.values, gbox.coords["y"].values)
    for name in ("red", "nir"):
        assert cube[name].dtype == np.float32
        np.testing.assert_array_equal(cube[name].values, ref[name].values)
    assert cube["scl"].dtype == np.uint8
    np.testing.assert_array_equal(cube["scl"].values, ref["scl"].values)
    assert np.isnan(cube["red"].values).any() and np.isfinite(cube["red"].values).mean() > 0.5
    # time steps and their items are the generator's acquisitions
    dates = sample_truth["acquisitions"]
    expected_ids = [d["item_id"] for d in dates]
    assert list(cube["source_items"].values) == expected_ids
    assert [pd.Timestamp(t).isoformat() for t in cube.time.values] == [
        pd.Timestamp(d["datetime"]).tz_convert(None).isoformat() for d in dates
    ]
    assert cube.rio.crs.to_epsg() == 32631


def test_cf_attributes(clean):
    cube = datacubes.open_cube(str(clean["url"]))
    attrs = cube.attrs
    assert attrs["Conventions"] == "CF-1.10, ACDD-1.3"
    assert (attrs["title"], attrs["license"], attrs["summary"]) == (
        "Thau test cube",
        "CC-BY-4.0",
        "A small window of the sample federation.",
    )
    assert attrs["earthlab_spec_hash"] == datacubes.read_spec(SPEC).hash
    assert json.loads(attrs["earthlab_spec"])["bands"] == ["red", "nir", "scl"]
    assert json.loads(attrs["earthlab_software"])["zarr"] == __import__("zarr").__version__
    assert attrs["time_coverage_start"] == "2021-10-03T10:40:00Z"
    assert attrs["source"] == "STAC items of sentinel-2-l2a from theia"
    assert 3.55 < attrs["geospatial_lon_min"] < attrs["geospatial_lon_max"] < 3.67
    red = cube["red"].attrs
    assert (red["units"], red["standard_name"]) == ("1", "surface_bidirectional_reflectance")
    assert red["mask"] == "NaN where SCL is 0, 1, 3, 8, 9, 10"
    assert cube["scl"].attrs["flag_meanings"].split()[6] == "water"
    assert cube["red"].attrs["grid_mapping"] == "spatial_ref"
    assert (cube.x.attrs["standard_name"], cube.x.attrs["units"]) == (
        "projection_x_coordinate",
        "m",
    )
    assert cube.time.attrs["standard_name"] == "time"


def test_manifest_is_exact(clean, sample_truth):
    manifest = json.loads(
        (clean["root"] / "store" / "thau-test.meta" / "manifest.json").read_text()
    )
    ids = [d["item_id"] for d in sample_truth["acquisitions"]]
    assert manifest["format"] == "earthlab-cube-manifest/1"
    assert manifest["spec_hash"] == datacubes.read_spec(SPEC).hash
    assert [s["items"] for s in manifest["steps"]] == [[i] for i in ids]
    assert {c for s in manifest["steps"] for c in s["centres"]} == {"theia"}
    assert manifest["filled"] == {tile: [[0, 16]] for tile in TILES}
    assert manifest["failed"] == {}
    assert manifest["items_done"] == sorted(ids)
    assert manifest["complete"] is True
    assert manifest["grid"] == {
        "crs": "EPSG:32631",
        "shape": [200, 200],
        "transform": [20.0, 0.0, 547800.0, 0.0, -20.0, 4806860.0],
    }
    assert manifest["variables"] == {"red": "float32", "nir": "float32", "scl": "uint8"}
    assert manifest["runs"][-1]["written"] == 16 and manifest["runs"][-1]["skipped"] == 0


def test_stac_item_and_collection(clean, sample_truth):
    meta = clean["root"] / "store" / "thau-test.meta"
    item = pystac.Item.from_file(str(meta / "item.json"))
    props = item.properties
    assert item.id == "thau-test" and item.collection_id == "thau-test"
    assert "https://stac-extensions.github.io/datacube/v2.2.0/schema.json" in item.stac_extensions
    dims = props["cube:dimensions"]
    assert dims["x"] == {
        "type": "spatial",
        "axis": "x",
        "extent": [547800.0, 551800.0],
        "step": 20.0,
        "reference_system": 32631,
    }
    assert dims["y"] == {
        "type": "spatial",
        "axis": "y",
        "extent": [4802860.0, 4806860.0],
        "step": 20.0,
        "reference_system": 32631,
    }
    expected_times = [
        pd.Timestamp(d["datetime"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        for d in sample_truth["acquisitions"]
    ]
    assert dims["time"]["values"] == expected_times
    assert dims["time"]["extent"] == [expected_times[0], expected_times[-1]]
    assert props["cube:variables"]["red"] == {
        "dimensions": ["time", "y", "x"],
        "type": "data",
        "unit": "1",
        "data_type": "float32",
        "description": "red reflectance (B04, 665 nm)",
    }
    assert props["cube:variables"]["scl"]["values"] == list(range(12))
    assert [s["items"] for s in props["earthlab:steps"]] == [
        [d["item_id"]] for d in sample_truth["acquisitions"]
    ]
    assert props["earthlab:spec_hash"] == datacubes.read_spec(SPEC).hash
    assert props["license"] == "CC-BY-4.0" and props["earthlab:complete"] is True
    assert {"earthlab", "xarray", "zarr", "odc-stac", "gdal"} <= set(props["earthlab:software"])
    assert (props["proj:code"], props["proj:shape"]) == ("EPSG:32631", [200, 200])
    zarr_asset = item.assets["zarr"]
    assert zarr_asset.href == str(clean["url"]) and zarr_asset.media_type == "application/vnd+zarr"
    assert zarr_asset.extra_fields["xarray:open_kwargs"]["engine"] == "zarr"
    collection = pystac.Collection.from_file(str(meta / "collection.json"))
    assert collection.id == "thau-test" and collection.license == "CC-BY-4.0"
    assert collection.extra_fields["cube:dimensions"] == dims
    assert (
        collection.extent.temporal.intervals[0][0]
        == pd.Timestamp(expected_times[0]).to_pydatetime()
    )


def test_rerun_with_nothing_new_writes_nothing(clean):
    folders = [clean["url"], clean["url"].with_suffix(".meta")]
    before = files_state(*folders)
    report = datacubes.build(clean["spec"], target=str(clean["url"]), centres=str(clean["centres"]))
    assert (report.writes, report.regions_written, report.steps_added) == (0, 0, 0)
    assert report.regions_skipped == 16 and report.complete
    assert files_state(*folders) == before


def test_another_spec_is_refused_unless_overwrite(clean, tmp_path):
    url = tmp_path / "thau-test.zarr"
    shutil.copytree(clean["url"], url)
    shutil.copytree(clean["url"].with_suffix(".meta"), tmp_path / "thau-test.meta")
    other = spec_file(tmp_path, bands=["red"])
    with pytest.raises(datacubes.TargetConflictError, match="built from another spec"):
        datacubes.build(other, target=str(url), centres=str(clean["centres"]))
    shutil.rmtree(tmp_path / "thau-test.meta")  # a store whose manifest is lost keeps its hash
    with pytest.raises(datacubes.TargetConflictError, match="a cube of another spec"):
        datacubes.build(other, target=str(url), centres=str(clean["centres"]))
    report = datacubes.build(other, target=str(url), centres=str(clean["centres"]), overwrite=True)
    assert report.complete and list(datacubes.open_cube(str(url)).data_vars) == ["red"]


# --- kill, resume, append, failures ---------------------------------------------------------


KILL_POINT = """
import os
import sys

from datacubes import _build
from lab._cli import main

save = _build._Run._save


def save_then_wait(self, manifest, grid):
    save(self, manifest, grid)
    if any(manifest.filled.values()):  # a region is recorded: the test kills the build here
        print("region recorded", flush=True)
        sys.stdin.readline()  # the test never writes: wait for SIGKILL
        os._exit(3)  # the test is gone (stdin closed): do not finish the build


_build._Run._save = save_then_wait
sys.exit(main(sys.argv[1:]))
"""
"""``earthlab cube build`` (``lab._cli.main``) that stops at its first manifest save recording
a filled region, says so on stdout and waits to be killed: a kill at a known state of the
build, whatever the machine's speed (the region threads keep filling meanwhile)."""

HANG_GUARD = 300.0
"""Seconds after which a subprocess that never reaches its expected state fails the test: only
a guard against hangs, never a window the test relies on."""


def first_line(stream, timeout: float) -> bytes | None:
    """The first line a subprocess writes (``b""`` if it ends first), ``None`` after ``timeout``."""
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def test_sigkill_mid_build_then_resume_gives_the_same_store(clean, tmp_path):
    url = tmp_path / "thau-test.zarr"
    manifest_path = tmp_path / "thau-test.meta" / "manifest.json"
    command = [
        sys.executable,
        "-c",
        KILL_POINT,
        "cube",
        "build",
        str(clean["spec"]),
        "--target",
        str(url),
        "--workers",
        "1",
        "--centres",
        str(clean["centres"]),
        "--quiet",
    ]
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
        try:
            line = first_line(proc.stdout, HANG_GUARD)
            assert line is not None, f"no region recorded in {HANG_GUARD:.0f} s (hung build?)"
            assert line == b"region recorded\n", (
                f"the build ended before it was killed: {line!r}, {errors.read_text()}"
            )
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=HANG_GUARD)
            proc.stdin.close()
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    killed = json.loads(manifest_path.read_text())
    done = filled_regions(killed)
    assert 1 <= done < 16 and killed["complete"] is False
    report = datacubes.build(clean["spec"], target=str(url), centres=str(clean["centres"]))
    assert report.complete
    assert (report.regions_skipped, report.regions_written) == (done, 16 - done)
    resumed = json.loads(manifest_path.read_text())
    assert resumed["runs"][-1]["skipped"] == done and resumed["runs"][-1]["written"] == 16 - done
    assert store_hashes(str(url)) == clean["hashes"]


def test_new_items_append_only_new_steps(clean, items, tmp_path):
    url = tmp_path / "store" / "thau-test.zarr"
    centres = write_federation(tmp_path, items[:10])
    first = datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    assert (first.steps, first.regions_total) == (10, 12)
    chunk_files = sorted((url / "red" / "c").rglob("*"))
    old_blocks = {
        p: p.stat().st_mtime_ns
        for p in chunk_files
        if p.is_file() and p.relative_to(url / "red" / "c").parts[0] in ("0", "1")
    }
    assert len(old_blocks) == 8  # time blocks 0 and 1 on 4 tiles
    write_federation(tmp_path, items)  # six new acquisitions in the catalogue
    second = datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    assert (second.steps, second.steps_added, second.steps_refilled) == (16, 6, 0)
    # only regions of new steps: t10-12 (the rest of block 2) and t12-16 (block 3), 4 tiles each
    manifest = json.loads((tmp_path / "store" / "thau-test.meta" / "manifest.json").read_text())
    assert (second.regions_written, manifest["runs"][-1]["written"]) == (8, 8)
    assert {p: p.stat().st_mtime_ns for p in old_blocks} == old_blocks
    assert manifest["filled"] == {tile: [[0, 16]] for tile in TILES}
    assert store_hashes(str(url)) == clean["hashes"]
    folders = [url, url.with_suffix(".meta")]
    before = files_state(*folders)
    third = datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    assert (third.writes, third.steps_added) == (0, 0) and files_state(*folders) == before


def test_new_steps_before_the_last_one_are_refused(clean, items, tmp_path):
    url = tmp_path / "thau-test.zarr"
    centres = write_federation(tmp_path, [*items[:5], *items[6:]])
    assert datacubes.build(clean["spec"], target=str(url), centres=str(centres)).steps == 15
    write_federation(tmp_path, items)  # a late item, inside the stored time range
    with pytest.raises(
        lab.ConfigurationError, match="cannot insert along time: rebuild the cube with --overwrite"
    ):
        datacubes.build(clean["spec"], target=str(url), centres=str(centres))


def test_an_item_joining_a_stored_step_refills_only_that_step(clean, items, tmp_path):
    url = tmp_path / "thau-test.zarr"
    shutil.copytree(clean["url"], url)
    shutil.copytree(clean["url"].with_suffix(".meta"), tmp_path / "thau-test.meta")
    twin = items[5].clone()  # a second item of the same solar day (a reprocessing, same pixels)
    twin.id = items[5].id.replace("_0_L2A", "_1_L2A")
    centres = write_federation(tmp_path, [*items, twin])
    report = datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    assert (report.steps, report.steps_added, report.steps_refilled) == (16, 0, 1)
    assert report.regions_written == 4  # step 5 on each tile, nothing else
    manifest = json.loads((tmp_path / "thau-test.meta" / "manifest.json").read_text())
    assert manifest["steps"][5]["items"] == sorted([items[5].id, twin.id])
    assert datacubes.open_cube(str(url))["source_items"].values[5] == ",".join(
        sorted([items[5].id, twin.id])
    )
    hashes = store_hashes(str(url))
    assert hashes.pop("source_items") != clean["hashes"]["source_items"]
    assert hashes == {k: v for k, v in clean["hashes"].items() if k != "source_items"}


def test_broken_asset_is_retried_recorded_and_resumed(clean, items, tmp_path, capsys):
    from lab._cli import main

    bad = tmp_path / "corrupt" / "red.tif"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a GeoTIFF")
    broken = [item.clone() for item in items]
    broken[5].assets["red"].href = str(bad)
    centres = write_federation(tmp_path, broken)
    url = tmp_path / "thau-test.zarr"
    code = main(
        [
            "cube",
            "build",
            str(clean["spec"]),
            "--target",
            str(url),
            "--centres",
            str(centres),
            "--retries",
            "1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "INCOMPLETE" in err and "run the same build again" in err
    manifest = json.loads((tmp_path / "thau-test.meta" / "manifest.json").read_text())
    assert sorted(manifest["failed"]) == [f"t4-8/{tile}" for tile in sorted(TILES)]
    for entry in manifest["failed"].values():
        assert entry["attempts"] == 2
        assert f"item '{items[5].id}' asset 'red'" in entry["error"]
        assert entry["items"] == sorted(i.id for i in items[4:8])
    assert manifest["complete"] is False
    assert manifest["filled"] == {tile: [[0, 4], [8, 16]] for tile in TILES}
    assert items[5].id not in manifest["items_done"] and items[4].id not in manifest["items_done"]
    item = json.loads((tmp_path / "thau-test.meta" / "item.json").read_text())
    assert item["properties"]["earthlab:complete"] is False
    for failed in manifest["failed"]:
        assert failed in err
    write_federation(tmp_path, items)  # the asset is fixed
    report = datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    assert report.complete and (report.regions_written, report.regions_skipped) == (4, 12)
    assert json.loads((tmp_path / "thau-test.meta" / "manifest.json").read_text())["failed"] == {}
    assert store_hashes(str(url)) == clean["hashes"]


# --- other cube kinds -----------------------------------------------------------------------


def test_monthly_median_composite(clean, items, tmp_path):
    spec = spec_file(
        tmp_path, bands=["red", "nir"], composite={"period": "month", "method": "median"}
    )
    url = tmp_path / "monthly.zarr"
    report = datacubes.build(spec, target=str(url), centres=str(clean["centres"]))
    cube = datacubes.open_cube(str(url)).compute()
    months = pd.DatetimeIndex(cube.time.values)
    assert list(months.strftime("%Y-%m-%d")) == [
        f"{m}-01"
        for m in (
            "2021-10",
            "2021-11",
            "2021-12",
            "2022-01",
            "2022-02",
            "2022-03",
            "2022-04",
            "2022-05",
        )
    ]
    assert (
        report.steps == 8
        and cube["red"].attrs["cell_methods"] == "time: median (interval: 1 month)"
    )
    ref = datacubes.load(
        items,
        ["red", "nir"],
        mask="clouds",
        crs="EPSG:32631",
        resolution=20,
        bbox=[3.55, 43.36, 3.67, 43.43],
    )
    ref = crop(ref, spec_geobox(datacubes.read_spec(SPEC).grid)).compute()
    by_month = pd.DatetimeIndex(ref.time.values).to_period("M")
    for t, month in enumerate(months.to_period("M")):
        chosen = np.flatnonzero(by_month == month)
        with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")
            expected = np.nanmedian(ref["red"].values[chosen], axis=0)
        np.testing.assert_allclose(cube["red"].values[t], expected, rtol=1e-6, equal_nan=True)
        assert cube["source_items"].values[t] == ",".join(
            sorted(i.id for i in np.asarray(items)[chosen])
        )


def test_cog_export_matches_the_store(clean, tmp_path):
    spec = spec_file(tmp_path, source={**SPEC["source"], "datetime": "2021-10-01/2021-10-31"})
    url = tmp_path / "october.zarr"
    report = datacubes.build(spec, target=str(url), centres=str(clean["centres"]), cog=True)
    assert report.steps == 2 and report.cogs_written == 6
    cube = datacubes.open_cube(str(url))
    path = tmp_path / "october.cog" / "red" / "october_red_20211018T104000.tif"
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32631 and src.dtypes[0] == "float32"
        assert tuple(src.transform)[:6] == (20.0, 0.0, 547800.0, 0.0, -20.0, 4806860.0)
        assert src.overviews(1) == [] and src.profile["compress"].lower() == "deflate"
        np.testing.assert_array_equal(src.read(1), cube["red"].isel(time=1).values)
    with rasterio.open(tmp_path / "october.cog" / "scl" / "october_scl_20211003T104000.tif") as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        np.testing.assert_array_equal(src.read(1), cube["scl"].isel(time=0).values)
    item = json.loads((tmp_path / "october.meta" / "item.json").read_text())
    assert item["assets"]["red_20211018T104000"]["href"] == str(path)
    assert len([k for k in item["assets"] if k != "zarr"]) == 6
    again = datacubes.build(spec, target=str(url), centres=str(clean["centres"]), cog=True)
    assert again.writes == 0


@pytest.mark.parametrize("layout", ["int16-zarr2", "float32-sharded"])
def test_encodings_and_layouts(clean, tmp_path, layout):
    source = {**SPEC["source"], "datetime": "2022-01-01/2022-02-28"}
    if layout == "int16-zarr2":
        changes = {
            "encoding": {"dtype": "int16", "scale_factor": 0.0001, "nodata": -32768},
            "target": {"zarr_format": 2, "chunks": {"time": 2, "y": 100, "x": 100}},
        }
    else:
        changes = {
            "target": {
                "chunks": {"time": 1, "y": 50, "x": 50},
                "shards": {"time": 2, "y": 100, "x": 100},
            }
        }
    url = tmp_path / "cube.zarr"
    report = datacubes.build(
        spec_file(tmp_path, source=source, **changes),
        target=str(url),
        centres=str(clean["centres"]),
    )
    assert report.steps == 4 and report.regions_total == 8
    cube = datacubes.open_cube(str(url)).compute()
    reference = datacubes.open_cube(str(clean["url"])).sel(time=cube.time).compute()
    if layout == "int16-zarr2":
        assert (url / ".zgroup").exists() and cube["red"].encoding["dtype"] == np.int16
        np.testing.assert_allclose(
            cube["red"].values, reference["red"].values, atol=0.5e-4, equal_nan=True
        )
        assert np.array_equal(np.isnan(cube["red"].values), np.isnan(reference["red"].values))
    else:
        meta = json.loads((url / "red" / "zarr.json").read_text())
        assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [2, 100, 100]
        assert meta["codecs"][0]["name"] == "sharding_indexed"
        assert meta["codecs"][0]["configuration"]["chunk_shape"] == [1, 50, 50]
        np.testing.assert_array_equal(cube["red"].values, reference["red"].values)
    np.testing.assert_array_equal(cube["scl"].values, reference["scl"].values)


def test_tile_grid_from_the_items(clean, tmp_path, sample_dir):
    spec = spec_file(
        tmp_path,
        bands=["red"],
        cloud_mask=None,
        grid={"tile": "31TEJ", "resolution": 20},
        source={**SPEC["source"], "datetime": "2021-10-03"},
        target={"chunks": {"time": 1, "y": 400, "x": 400}},
    )
    url = tmp_path / "tile.zarr"
    report = datacubes.build(spec, target=str(url), centres=str(clean["centres"]))
    cube = datacubes.open_cube(str(url))
    assert report.steps == 1 and cube.odc.geobox.shape == (800, 800)
    assert tuple(cube.odc.geobox.transform)[:6] == (20.0, 0.0, 541800.0, 0.0, -20.0, 4812860.0)


# --- discovery: list, catalogue, intake, CLI ------------------------------------------------


def test_cubes_are_listed_searched_and_opened_by_name(clean, sample_dir, tmp_path):
    store = clean["root"] / "store"
    cubes = datacubes.list_cubes(str(store))
    assert [c.id for c in cubes] == ["thau-test"]
    assert datacubes.list_cubes(centre="cubes", centres=str(clean["centres"]))[0].id == "thau-test"
    found = lab.catalog(str(clean["centres"])).search(collections=["thau-test"])
    assert [i.id for i in found] == ["thau-test"]
    assert found[0].properties["earthlab:centre"] == "cubes"
    assert len(found[0].properties["cube:dimensions"]["time"]["values"]) == 16
    assert (
        len(lab.catalog(str(clean["centres"])).search(collections=["thau-test"], datetime="2023"))
        == 0
    )
    import intake

    path = datacubes.write_intake_catalog(tmp_path / "lab.yaml", str(clean["centres"]))
    catalog = intake.from_yaml_file(path)
    opened = catalog["thau-test"].read()
    assert isinstance(opened, xr.Dataset)
    xr.testing.assert_identical(opened.load(), datacubes.open_cube(str(clean["url"])).load())
    table = catalog["insitu-water-quality"].read()
    files = sorted((sample_dir / "odatis" / "insitu-water-quality").glob("*/*.parquet"))
    assert len(files) == 7
    assert len(table) == sum(len(pd.read_parquet(f)) for f in files)
    assert set(table["station_id"]) == {f.stem for f in files}


def test_cli_info_and_list(clean, capsys):
    from lab._cli import main

    assert main(["cube", "info", str(clean["url"])]) == 0
    out = capsys.readouterr().out
    assert "cube thau-test  (complete)" in out and "S2A_31TEJ_20211003_0_L2A [theia]" in out
    assert "EPSG:32631, 20 m pixels, 200 x 200" in out
    assert main(["cube", "info", str(clean["url"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "thau-test"
    assert main(["cube", "list", str(clean["root"] / "store")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "status", "steps", "start", "end", "url"]
    assert lines[1].split()[:3] == ["thau-test", "complete", "16"]
    assert main(["cube", "info", str(clean["root"] / "nothing.zarr")]) == 1


def test_missing_centre_answer_stops_the_build(clean, tmp_path):
    centres = tmp_path / "centres.yaml"
    centres.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "centres": [
                    {
                        "name": "theia",
                        "catalog": {"kind": "stac-static", "href": str(tmp_path / "gone.json")},
                    }
                ],
            }
        )
    )
    with pytest.raises(lab.CatalogError, match="could not be searched completely"):
        datacubes.build(clean["spec"], target=str(tmp_path / "x.zarr"), centres=str(centres))
    assert not (tmp_path / "x.zarr").exists()


def test_a_restricted_centre_of_the_source_stops_the_build(clean, tmp_path):
    """A centre that refuses the search may hold items of the cube: no build from a part."""
    centres = yaml.safe_load(Path(clean["centres"]).read_text())
    base = Path(clean["centres"]).parent
    for centre in centres["centres"]:
        centre["catalog"]["href"] = str(base / centre["catalog"]["href"])
    centres["centres"].append(
        {
            "name": "vhr",
            "catalog": {"kind": "stac-static", "href": str(base / "theia" / "catalog.json")},
            "collections": ["sentinel-2-l2a"],
            "restricted": {"sentinel-2-l2a": "vhr-users"},
            "access_url": "https://vhr.example.org/access",
        }
    )
    path = tmp_path / "centres.yaml"
    path.write_text(yaml.safe_dump(centres))
    spec = spec_file(tmp_path, source={**SPEC["source"], "centres": ["theia", "vhr"]})
    with pytest.raises(lab.CatalogError, match=r"vhr: restricted: request access via https://vhr"):
        datacubes.build(spec, target=str(tmp_path / "x.zarr"), centres=str(path))
    assert not (tmp_path / "x.zarr").exists()


def test_append_interrupted_between_manifest_and_store_is_completed(
    clean, items, tmp_path, monkeypatch
):
    from datacubes import _build

    url = tmp_path / "thau-test.zarr"
    centres = write_federation(tmp_path, items[:10])
    datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    write_federation(tmp_path, items)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after saving the manifest, before resizing

    monkeypatch.setattr(_build._Run, "_append", killed)
    with pytest.raises(KeyboardInterrupt):
        datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    manifest = json.loads((tmp_path / "thau-test.meta" / "manifest.json").read_text())
    assert len(manifest["steps"]) == 16 and datacubes.open_cube(str(url)).sizes["time"] == 10
    monkeypatch.undo()
    report = datacubes.build(clean["spec"], target=str(url), centres=str(centres))
    assert report.complete and report.steps_added == 0 and report.regions_written == 8
    assert store_hashes(str(url)) == clean["hashes"]


def test_regions_filled_on_a_dask_cluster(clean, tmp_path):
    import distributed  # a core dependency: missing it fails the run

    url = tmp_path / "thau-test.zarr"
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        report = datacubes.build(
            clean["spec"], target=str(url), centres=str(clean["centres"]), client=client
        )
    assert report.complete and report.regions_written == 16
    assert store_hashes(str(url)) == clean["hashes"]


def test_cube_in_another_crs_is_reprojected_like_the_loader(clean, items, tmp_path):
    grid = {"crs": "EPSG:2154", "resolution": 20, "bbox": [3.58, 43.38, 3.63, 43.41]}  # Lambert-93
    source = {**SPEC["source"], "datetime": "2021-10-01/2021-10-31"}
    spec = spec_file(tmp_path, bands=["red"], grid=grid, source=source)
    url = tmp_path / "l93.zarr"
    report = datacubes.build(spec, target=str(url), centres=str(clean["centres"]))
    cube = datacubes.open_cube(str(url))
    gbox = cube.odc.geobox
    assert report.complete and cube.rio.crs.to_epsg() == 2154 and gbox.shape == (169, 204)
    assert tuple(gbox.transform)[:6] == (20.0, 0.0, 747000.0, 0.0, -20.0, 6256980.0)
    ref = datacubes.load(
        items[:2],
        ["red"],
        mask="clouds",
        crs="EPSG:2154",
        resolution=20,
        bbox=[3.57, 43.37, 3.64, 43.42],
    )
    np.testing.assert_array_equal(cube["red"].values, crop(ref, gbox)["red"].values)


def test_build_killed_while_writing_the_template_starts_again(clean, tmp_path, monkeypatch):
    from datacubes import _build

    url = tmp_path / "thau-test.zarr"

    def killed(location, *args, **kwargs):
        Path(location.url).mkdir()
        (Path(location.url) / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
        raise KeyboardInterrupt  # dies with a half-written store and no data

    monkeypatch.setattr(_build, "write_template", killed)
    with pytest.raises(KeyboardInterrupt):
        datacubes.build(clean["spec"], target=str(url), centres=str(clean["centres"]))
    monkeypatch.undo()
    manifest = json.loads((tmp_path / "thau-test.meta" / "manifest.json").read_text())
    assert manifest["template"] is False
    report = datacubes.build(clean["spec"], target=str(url), centres=str(clean["centres"]))
    assert report.complete and report.regions_written == 16
    assert store_hashes(str(url)) == clean["hashes"]


def _sen2cor(catalog: pystac.Catalog) -> list[pystac.Item]:
    """The Sen2Cor-like items of theia (it also publishes the same scenes as MAJA products)."""
    return [i for i in catalog.get_items(recursive=True) if i.collection_id == "sentinel-2-l2a"]
