"""The sample's daily gridded ocean-colour product (odatis, collection ``ocean-colour-daily``).

Its values are the truth model at each cell's centre, packed in int16: decoded, they equal the
model within the packing step; land and cloud cells are missing; the grid keeps its own
non-square pixel sizes in degrees; ``datacubes.load_gridded`` reads the items.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pystac
import xarray as xr

from lab.sample import _grid, _ocean
from lab.sample._fields import TruthModel, days


def test_daily_files_hold_the_truth_at_their_cells(tmp_path: Path) -> None:
    grid = _grid.Grid.default()
    surf = _grid.surface(grid)
    rng = np.random.default_rng(7)
    start = datetime(2021, 10, 1, tzinfo=UTC)
    dates = [start + timedelta(days=i) for i in range(4)]
    model = TruthModel.random(rng, days(dates[0]), days(dates[-1]))
    items, assets, record = _ocean.write_product(tmp_path, grid, surf, model, dates, rng)
    assert [i.id for i in items] == [f"OC_THAU_2021100{d}" for d in range(1, 5)]
    references = Path(assets["references"].href)
    assert references == tmp_path / "ocean-colour-daily" / "references.json"
    assert record["references"] == "ocean-colour-daily/references.json"

    path = Path(items[1].assets["data"].href)
    with xr.open_dataset(path) as day:
        assert day["chl"].encoding["dtype"] == np.dtype("int16")
        lat, lon = day["lat"].to_numpy(), day["lon"].to_numpy()
        assert lat[0] > lat[-1]  # north to south, as many ocean-colour products
        assert np.allclose(np.diff(lat), -0.0027) and np.allclose(np.diff(lon), 0.0037)
        when = datetime(2021, 10, 2, 10, 30, tzinfo=UTC)
        assert day["time"].to_numpy()[0] == np.datetime64("2021-10-02T10:30")
        lons, lats = np.meshgrid(lon, lat)
        x, y = _grid._TO_UTM.transform(lons, lats)
        for name, truth in (
            ("chl", model.chlorophyll_a(days(when), x, y)),
            ("tur", model.turbidity(days(when), x, y)),
        ):
            values = day[name].to_numpy()[0]
            seen = np.isfinite(values)
            assert 100 < seen.sum() < values.size  # water, some of it clear; land missing
            np.testing.assert_allclose(values[seen], truth[seen], atol=0.0006)
    assert record["shape"] == [len(lat), len(lon)]

    import datacubes

    cube = datacubes.load_gridded(
        items,
        bands=["chl"],
    )
    assert cube.sizes["time"] == 4 and cube["chl"].attrs["crs"] == "EPSG:4326"
    np.testing.assert_array_equal(
        cube["chl"].isel(time=1).to_numpy(), xr.open_dataset(path)["chl"].to_numpy()[0]
    )


def test_odatis_publishes_the_product_with_references_that_move_with_it(
    sample_dir: Path, sample_truth: dict, tmp_path: Path, monkeypatch
) -> None:
    """The federation's ``ocean-colour-daily``: a season of days, opened once by reference."""
    import shutil

    import datacubes
    import lab

    record = sample_truth["ocean_colour"]
    assert record["days"] == _ocean.DAYS == 92
    federation = lab.catalog(sample_dir / "centres.yaml")
    found = federation.search(collections="ocean-colour-daily")
    ids = sorted(item.id for item in found)
    assert len(ids) == 92 and ids[0] == "OC_THAU_20211003" and ids[-1] == "OC_THAU_20220102"
    (collection,) = [c for c in federation.collections() if c.id == "ocean-colour-daily"]
    assert collection.assets["references"].roles == ["references", "index"]

    # the whole copy moved elsewhere, opened from another working directory: the references
    # name their files relative to themselves
    shutil.copytree(
        sample_dir / "odatis", tmp_path / "odatis", ignore=shutil.ignore_patterns("insitu*")
    )
    moved = tmp_path / "odatis" / "ocean-colour-daily"
    monkeypatch.chdir(tmp_path)
    cube = datacubes.load_gridded(
        pystac.Collection.from_file(str(moved / "collection.json")),
        datetime="2021-11-01/2021-11-30",
    )
    assert cube.sizes == {"time": 30, "lat": record["shape"][0], "lon": record["shape"][1]}
    files = sorted(moved.glob("OC_THAU_202111*/*.nc"))
    with xr.open_mfdataset(files, engine="h5netcdf", combine="by_coords") as direct:
        for name in ("chl", "tur"):
            np.testing.assert_array_equal(cube[name].to_numpy(), direct[name].to_numpy())
    chl = cube["chl"].to_numpy()
    seen = np.isfinite(chl).any(axis=0).sum()
    assert 0.9 * record["water_cells"] < seen <= record["water_cells"]  # land never seen
    assert np.isnan(chl).all(axis=0).sum() >= chl[0].size - record["water_cells"]


def test_aeris_publishes_daily_aerosol_optical_depth_as_its_record_says(
    sample_dir: Path, sample_truth: dict
) -> None:
    """A third pole: the aeris product's values are the record's formula at the cell centres,
    recomputed here from the record alone, within the int16 packing step."""
    import datacubes
    import lab

    record = sample_truth["aerosol"]
    assert record["days"] == 92 and record["shape"] == [40, 50] and len(record["events"]) == 3
    federation = lab.catalog(sample_dir / "centres.yaml")
    assert "aeris" in federation.centres
    (collection,) = [c for c in federation.collections() if c.id == "aerosol-optical-depth-daily"]
    cube = datacubes.load_gridded(collection)
    aod = cube["aod550"]
    assert aod.attrs["standard_name"] == (
        "atmosphere_optical_thickness_due_to_ambient_aerosol_particles"
    )
    assert aod.attrs["crs"] == "EPSG:4326" and aod.sizes == {"time": 92, "lat": 40, "lon": 50}
    lat, lon = aod["lat"].to_numpy(), aod["lon"].to_numpy()
    assert np.allclose(np.diff(lat), -0.05) and np.allclose(np.diff(lon), 0.05)
    assert (lat[0], lon[0]) == (44.475, 2.525)
    lons, lats = np.meshgrid(lon, lat)
    epoch = np.datetime64("2022-01-01T00:00")
    values = aod.to_numpy()
    for i, when in enumerate(aod["time"].to_numpy()):
        assert str(when)[11:16] == "12:00"
        t = (when - epoch) / np.timedelta64(1, "D")
        truth = 0.10 + 0.04 * np.sin(2 * np.pi * (t - 80.0) / 365.25)
        for e in record["events"]:
            truth = truth + e["a"] * np.exp(-0.5 * ((t - e["t"]) / e["w"]) ** 2) * np.exp(
                -((lons - e["lon"]) ** 2 + (lats - e["lat"]) ** 2) / (2 * e["s"] ** 2)
            )
        seen = np.isfinite(values[i])
        assert 0.35 <= seen.mean() <= 1.0  # clouds hide at most 60 %
        assert abs(seen.mean() - (1 - record["cloud_cover"][i])) < 1e-9
        # half the packing step, plus the float32 rounding before packing
        np.testing.assert_allclose(values[i][seen], truth[seen], atol=0.000051)
    # the events are in the season: some day somewhere has a plume well above the background
    assert np.nanmax(values) > 0.3
