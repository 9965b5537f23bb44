"""Water-quality maps (``recipes.maps``, the ``water-quality-maps`` process) against the truth.

The sample's generator keeps the true turbidity and chlorophyll-a of every pixel and date, and
its scene classification (``truth/truth.nc``): a composite of the maps must be the composite of
the truth over the same clear-water pixels, within the reflectance noise the generator adds.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

import lab
from lab_server.processes import JobStore
from lab_server.processes._registry import processor_for
from lab_server.processes._runner import run_job
from lab_server.processes._stac import COLLECTION, EXPRESSION_FORMAT, PROCESSING
from recipes.maps import water_quality_maps

pytestmark = pytest.mark.slow

SCL_WATER = 6


@pytest.fixture(scope="module")
def truth(sample_dir: Path) -> xr.Dataset:
    with xr.open_dataset(sample_dir / "truth" / "truth.nc") as dataset:
        return dataset.load()


@pytest.fixture(scope="module")
def median_maps(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return water_quality_maps(
        tmp_path_factory.mktemp("maps"), centres=sample_dir / "centres.yaml", progress=None
    )


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as cog:
        assert cog.profile["tiled"] and cog.dtypes == ("float32",) and np.isnan(cog.nodata)
        assert cog.crs.to_epsg() == 32631 and cog.res == (20.0, 20.0)
        return cog.read(1), cog.tags()


@pytest.mark.parametrize(
    ("product", "typical", "worst"),
    # the reflectance noise (σ = 0.0003) weighs more on NDCI, a ratio of two close bands
    [("turbidity", 0.02, 0.2), ("chlorophyll_a", 0.04, 0.5)],
)
def test_the_median_map_is_the_median_of_the_truth_over_clear_water(
    median_maps, truth: xr.Dataset, product: str, typical: float, worst: float
) -> None:
    mapped, tags = _read(median_maps.files[product])
    expected = truth[product].where(truth["scl"] == SCL_WATER).median("time").to_numpy()
    # the same pixels: water that was clear at least once, nothing on land or always cloudy
    np.testing.assert_array_equal(np.isfinite(mapped), np.isfinite(expected))
    assert np.isfinite(mapped).sum() > 100_000
    ratio = np.log(mapped[np.isfinite(mapped)] / expected[np.isfinite(expected)])
    assert np.median(np.abs(ratio)) < typical
    assert np.abs(ratio).max() < worst
    assert tags["product"] == product and tags["composite"] == "median"
    assert tags["units"] == median_maps.units[product]
    assert len(tags["dates"].split(",")) == 16 == len(median_maps.dates)
    assert tags["scenes"].split(",") == list(median_maps.scenes)


def test_spm_is_nechad_2010_of_the_red_reflectance(median_maps, truth: xr.Dataset) -> None:
    from recipes.water_quality import nechad_inverse, spm_nechad2010

    spm, tags = _read(median_maps.files["spm"])
    assert tags["units"] == "g/m3" or tags["units"] == median_maps.units["spm"]
    # the truth's red reflectance is the inverse of Nechad's turbidity; SPM of it, composed
    red = nechad_inverse(truth["turbidity"].where(truth["scl"] == SCL_WATER))
    expected = spm_nechad2010(red).median("time").to_numpy()
    both = np.isfinite(spm) & np.isfinite(expected)
    assert both.sum() > 100_000
    assert np.median(np.abs(np.log(spm[both] / expected[both]))) < 0.02


def test_latest_and_max_composites(sample_dir: Path, truth: xr.Dataset, tmp_path: Path) -> None:
    latest = water_quality_maps(
        tmp_path,
        centres=sample_dir / "centres.yaml",
        products=["turbidity"],
        composite="latest",
        datetime="2022-01-01/2022-03-31",
        progress=None,
    )
    assert len(latest.dates) == 1 and "2022-01-01" <= latest.dates[0] <= "2022-03-31"
    mapped, _ = _read(latest.files["turbidity"])
    day = truth["turbidity"].sel(time=latest.dates[0]).squeeze()
    clear = (truth["scl"].sel(time=latest.dates[0]).squeeze() == SCL_WATER).to_numpy()
    np.testing.assert_array_equal(np.isfinite(mapped), clear)
    assert np.median(np.abs(np.log(mapped[clear] / day.to_numpy()[clear]))) < 0.02

    highest = water_quality_maps(
        tmp_path,
        centres=sample_dir / "centres.yaml",
        products=["turbidity"],
        composite="max",
        progress=None,
    )
    mapped, _ = _read(highest.files["turbidity"])
    expected = truth["turbidity"].where(truth["scl"] == SCL_WATER).max("time").to_numpy()
    ok = np.isfinite(expected)
    assert np.median(np.abs(np.log(mapped[ok] / expected[ok]))) < 0.02


def test_bad_products_or_composites_are_refused_saying_the_valid_ones(
    sample_dir: Path, tmp_path: Path
) -> None:
    centres = sample_dir / "centres.yaml"
    with pytest.raises(
        lab.ConfigurationError, match="turbidity, chlorophyll_a, spm; unknown: cdom"
    ):
        water_quality_maps(tmp_path, centres=centres, products=["cdom"], progress=None)
    with pytest.raises(lab.ConfigurationError, match="none given"):
        water_quality_maps(tmp_path, centres=centres, products=[], progress=None)
    with pytest.raises(lab.ConfigurationError, match="median, mean, max, latest"):
        water_quality_maps(tmp_path, centres=centres, composite="mode", progress=None)
    with pytest.raises(lab.NoItemsError, match="no satellite scene"):
        water_quality_maps(tmp_path, centres=centres, datetime="1999", progress=None)
    assert not list(tmp_path.glob("*.tif"))


def test_a_maps_job_is_described_by_a_stac_item_that_rebuilds_it(
    sample_centres_env: Path, median_maps, tmp_path: Path
) -> None:
    """The job's Item (processing extension): its files, its inputs' items, its request."""
    store = JobStore(tmp_path / "jobs.sqlite")
    inputs = {"products": ["turbidity", "spm"], "composite": "median", "name": "thau"}
    job_id = store.add_job({"user": "alice", "process_id": "water-quality-maps", "inputs": inputs})
    processor = processor_for("water-quality-maps", "recipes._process:WATER_QUALITY_MAPS")
    service = "http://lab.example/services/processes/"
    assert run_job(store, job_id, processor, inputs, tmp_path / "alice", service) == "successful"

    outputs = store.get_job_result(job_id, "alice")[1]
    assert outputs["maps"]["turbidity"]["href"] == service + "results/thau/turbidity_median.tif"
    assert outputs["maps"]["spm"]["units"] == median_maps.units["spm"]
    mine, _ = _read(Path(outputs["maps"]["turbidity"]["path"]))
    direct, _ = _read(median_maps.files["turbidity"])
    np.testing.assert_array_equal(mine, direct)  # the job's map is the recipe's

    [item] = store.get_items("alice")
    assert store.get_items("bob") == []
    assert item["id"] == job_id and item["collection"] == COLLECTION
    assert PROCESSING in item["stac_extensions"]
    props = item["properties"]
    assert props["processing:expression"] == {
        "format": EXPRESSION_FORMAT,
        "expression": {"process": "water-quality-maps", "inputs": inputs},
    }
    assert props["earthlab:job"] == job_id and props["processing:software"]["earthlab"]
    assert props["start_datetime"] == "2021-10-03T10:40:00Z"
    assert props["end_datetime"] == "2022-05-16T10:40:00Z"
    assert set(item["assets"]) == {"turbidity", "spm"}
    asset = item["assets"]["turbidity"]
    assert asset["href"] == service + "results/thau/turbidity_median.tif"
    assert asset["type"].startswith("image/tiff; application=geotiff")
    # the sample's static catalogue gives its items no URL: no derived_from link here (the
    # lab's STAC APIs do: tests/test_processes_service.py), but the lineage counts them
    assert "on 16 input item(s) of theia" in props["processing:lineage"]
    assert [link["rel"] for link in item["links"]] == ["via"]
    assert item["links"][0]["href"] == f"{service}jobs/{job_id}"
    # the footprint is the scenes': the sample's tile around the lagoon
    west, south, east, north = item["bbox"]
    assert west < 3.56 < east and south < 43.36 < north
    import pystac

    assert lab.SearchQuery.build(bbox=[3.5, 43.3, 3.6, 43.4]).matches(pystac.Item.from_dict(item))
    assert not lab.SearchQuery.build(bbox=[0, 0, 1, 1]).matches(pystac.Item.from_dict(item))

    # a database of the service's first version (no item column) opens and gains it
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, user TEXT NOT NULL, process_id TEXT NOT NULL,"
            " status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', progress INTEGER,"
            " created TEXT NOT NULL, started TEXT, finished TEXT, updated TEXT NOT NULL,"
            " inputs TEXT NOT NULL DEFAULT '{}', results TEXT, mimetype TEXT)"
        )
    assert JobStore(old).get_items("alice") == []


def test_maps_of_the_maja_products_are_the_truth_over_the_same_water(
    sample_dir: Path, sample_centres_env: Path, tmp_path: Path, truth: xr.Dataset, median_maps
) -> None:
    """THEIA's MAJA products of the same scenes (bit masks, no SCL) give the same maps."""
    maja = water_quality_maps(
        tmp_path,
        centres=sample_dir / "centres.yaml",
        collection="sentinel2-l2a-theia",
        products=["turbidity"],
        progress=None,
    )
    assert all(name.startswith("SENTINEL2") for name in maja.scenes)
    mapped, _ = _read(maja.files["turbidity"])
    expected = truth["turbidity"].where(truth["scl"] == SCL_WATER).median("time").to_numpy()
    np.testing.assert_array_equal(np.isfinite(mapped), np.isfinite(expected))
    ratio = np.log(mapped[np.isfinite(mapped)] / expected[np.isfinite(expected)])
    assert np.median(np.abs(ratio)) < 0.02 and np.abs(ratio).max() < 0.2
    sen2cor, _ = _read(median_maps.files["turbidity"])
    assert not np.array_equal(mapped, sen2cor, equal_nan=True)  # its own noise: another file
    # the process takes the collection as an input and gives the recipe's map
    store = JobStore(tmp_path / "jobs.sqlite")
    inputs = {"collection": "sentinel2-l2a-theia", "products": ["turbidity"], "name": "maja"}
    job_id = store.add_job({"user": "alice", "process_id": "water-quality-maps", "inputs": inputs})
    processor = processor_for("water-quality-maps", "recipes._process:WATER_QUALITY_MAPS")
    service = "http://lab.example/services/processes/"
    assert run_job(store, job_id, processor, inputs, tmp_path / "alice", service) == "successful"
    outputs = store.get_job_result(job_id, "alice")[1]
    assert outputs["scenes"] == list(maja.scenes)
    job_map, _ = _read(Path(outputs["maps"]["turbidity"]["path"]))
    np.testing.assert_array_equal(job_map, mapped)
