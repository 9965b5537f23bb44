"""recipes.water_quality: every algorithm against numbers worked out by hand from the papers.

Expected values are written as the published formula with literal numbers, followed by the
result (computed independently of the code under test).
"""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import datacubes
import lab
from recipes import water_quality as wq

NAN = float("nan")


# --------------------------------------------------------------------------- Nechad 2009 / 2010


def test_nechad_by_hand_on_numbers():
    # T = A ρ / (1 - ρ / C), A = 282.95, C = 0.1728
    assert wq.nechad(0.05) == pytest.approx(282.95 * 0.05 / (1 - 0.05 / 0.1728), rel=1e-12)
    assert wq.nechad(0.05) == pytest.approx(19.907882736, rel=1e-9)
    assert wq.nechad(0.01) == pytest.approx(282.95 * 0.01 / (1 - 0.01 / 0.1728))  # 3.0033022
    assert wq.nechad(0.01) == pytest.approx(3.003302211, rel=1e-9)
    # just below 0.5 C = 0.0864: 282.95 * 0.0863 / (1 - 0.0863 / 0.1728) = 48.78071
    assert wq.nechad(0.0863) == pytest.approx(48.780710844, rel=1e-9)
    assert isinstance(wq.nechad(0.05), float)


def test_nechad_exact_signature_and_keyword_coefficients():
    assert wq.nechad(0.05, A=282.95, C=0.1728) == pytest.approx(19.907882736, rel=1e-9)
    # another calibration: A = 300, C = 0.2 -> 300 * 0.05 / (1 - 0.25) = 20
    assert wq.nechad(0.05, A=300.0, C=0.2) == pytest.approx(20.0, rel=1e-12)
    assert wq.nechad(0.05, 300.0, 0.2) == pytest.approx(20.0, rel=1e-12)


def test_nechad_b_offset_is_optional_and_additive():
    # Published three-coefficient tables add B = 0.23 FNU at 665 nm.
    assert wq.nechad(0.05, B=0.23) == pytest.approx(19.907882736 + 0.23, rel=1e-9)
    # SPM 2010 with B = 1.74 g/m3: 355.85 * 0.05 / (1 - 0.05 / 0.1728) + 1.74
    assert wq.spm_nechad2010(0.05, B=1.74) == pytest.approx(25.037003257 + 1.74, rel=1e-9)


@pytest.mark.parametrize(
    "rho",
    [0.0, -0.001, 0.0864, 0.1, 0.1728, 0.5, NAN],
    ids=["zero", "negative", "half_C", "above_half_C", "C", "far", "nan"],
)
def test_nechad_outside_valid_range_is_nan(rho):
    assert math.isnan(wq.nechad(rho))
    assert math.isnan(wq.spm_nechad2010(rho))


def test_nechad_negative_result_with_negative_offset_is_nan():
    # 282.95 * 0.001 / (1 - 0.001 / 0.1728) - 1 = 0.28460 - 1 < 0
    assert math.isnan(wq.nechad(0.001, B=-1.0))


def test_spm_nechad2010_by_hand():
    # S = 355.85 ρ / (1 - ρ / 0.1728), ρ = 0.05 -> 17.7925 / 0.7106481 = 25.0370033
    assert wq.spm_nechad2010(0.05) == pytest.approx(355.85 * 0.05 / (1 - 0.05 / 0.1728))
    assert wq.spm_nechad2010(0.05) == pytest.approx(25.037003257, rel=1e-9)


def test_nechad_inverse_round_trip():
    # ρ = T / (A + T / C): T = 25 -> 25 / (282.95 + 25 / 0.1728) = 0.0584623113
    rho = wq.nechad_inverse(25.0)
    assert rho == pytest.approx(25 / (282.95 + 25 / 0.1728), rel=1e-12)
    assert rho == pytest.approx(0.0584623113, rel=1e-9)
    assert wq.nechad(rho) == pytest.approx(25.0, rel=1e-12)
    turbidity = np.array([0.5, 1.0, 10.0, 40.0, 48.0])
    np.testing.assert_allclose(wq.nechad(wq.nechad_inverse(turbidity)), turbidity, rtol=1e-12)
    # with another calibration and an offset
    back = wq.nechad(wq.nechad_inverse(turbidity, A=350, C=0.15, B=0.23), A=350, C=0.15, B=0.23)
    np.testing.assert_allclose(back, turbidity, rtol=1e-12)


def test_nechad_inverse_maps_invalid_turbidity_to_nan():
    # A C = 282.95 * 0.1728 = 48.894 FNU is the image of ρ = 0.5 C.
    assert math.isnan(wq.nechad_inverse(0.0))
    assert math.isnan(wq.nechad_inverse(-1.0))
    assert math.isnan(wq.nechad_inverse(282.95 * 0.1728))
    assert not math.isnan(wq.nechad_inverse(48.8))


@pytest.mark.parametrize("bad", [{"A": 0}, {"A": -1}, {"C": 0}, {"C": NAN}, {"B": math.inf}])
def test_nechad_rejects_bad_coefficients(bad):
    with pytest.raises(lab.ConfigurationError, match="coefficient"):
        wq.nechad(0.05, **bad)


# --------------------------------------------------------------------------- Dogliotti 2015


def test_dogliotti_red_only_below_lower_limit():
    # ρ(red) = 0.04 < 0.05: T = 228.1 * 0.04 / (1 - 0.04 / 0.1641) = 12.0648541
    assert wq.turbidity_dogliotti2015(0.04, 0.01) == pytest.approx(12.064854150, rel=1e-9)
    # the NIR reflectance is not used there, even when it is invalid
    assert wq.turbidity_dogliotti2015(0.04, -0.5) == pytest.approx(12.064854150, rel=1e-9)


def test_dogliotti_blend_at_lower_boundary_is_red():
    # w = (0.05 - 0.05) / 0.02 = 0: T = 228.1 * 0.05 / (1 - 0.05 / 0.1641) = 16.4028089
    assert wq.turbidity_dogliotti2015(0.05, 0.01) == pytest.approx(16.402808940, rel=1e-9)
    assert wq.turbidity_dogliotti2015(0.05, -0.5) == pytest.approx(16.402808940, rel=1e-9)


def test_dogliotti_blend_in_the_middle():
    # ρ(red) = 0.06 -> w = (0.06 - 0.05) / (0.07 - 0.05) = 0.5
    # T_red = 228.1 * 0.06 / (1 - 0.06 / 0.1641) = 21.5741844
    # T_nir = 3078.9 * 0.015 / (1 - 0.015 / 0.2112) = 49.7143486
    # T = 0.5 * 21.5741844 + 0.5 * 49.7143486 = 35.6442665
    assert wq.turbidity_dogliotti2015(0.06, 0.015) == pytest.approx(35.644266531, rel=1e-9)
    # ρ(red) = 0.055 -> w = 0.25; T_red = 18.8699959, T_nir(0.012) = 39.1725108
    # T = 0.75 * 18.8699959 + 0.25 * 39.1725108 = 23.9456246
    assert wq.turbidity_dogliotti2015(0.055, 0.012) == pytest.approx(23.945624617, rel=1e-9)
    # inside the blend both bands must be valid
    assert math.isnan(wq.turbidity_dogliotti2015(0.06, -0.001))


def test_dogliotti_blend_at_upper_boundary_and_above_is_nir():
    # w = 1 at 0.07: T = 3078.9 * 0.02 / (1 - 0.02 / 0.2112) = 68.0192134
    assert wq.turbidity_dogliotti2015(0.07, 0.02) == pytest.approx(68.019213389, rel=1e-9)
    # 0.08: NIR only, T = 3078.9 * 0.03 / (1 - 0.03 / 0.2112) = 107.6595497
    assert wq.turbidity_dogliotti2015(0.08, 0.03) == pytest.approx(107.659549669, rel=1e-9)
    # red beyond its own 0.5 C (0.08205) does not matter there
    assert wq.turbidity_dogliotti2015(0.12, 0.03) == pytest.approx(107.659549669, rel=1e-9)
    # NIR at or above 0.5 C = 0.1056 saturates
    assert math.isnan(wq.turbidity_dogliotti2015(0.12, 0.1056))


def test_dogliotti_is_continuous_across_the_blend():
    red = np.linspace(0.045, 0.075, 301)
    nir = 0.3 * red  # any smooth NIR
    t = wq.turbidity_dogliotti2015(red, nir)
    assert np.all(np.isfinite(t))
    assert np.max(np.abs(np.diff(t))) < 0.5  # steps of 1e-4 in ρ: no jump at 0.05 or 0.07


def test_dogliotti_rejects_bad_interval():
    with pytest.raises(lab.ConfigurationError, match="lower < upper"):
        wq.turbidity_dogliotti2015(0.05, 0.01, lower=0.07, upper=0.05)


# --------------------------------------------------------------------------- NDCI chlorophyll


def test_chlorophyll_a_ndci_by_hand():
    # 14.039 + 86.115 N + 194.325 N^2
    assert wq.chlorophyll_a_ndci(0.1) == pytest.approx(14.039 + 8.6115 + 1.94325)  # 24.59375
    assert wq.chlorophyll_a_ndci(-0.1) == pytest.approx(14.039 - 8.6115 + 1.94325)  # 7.37075
    assert wq.chlorophyll_a_ndci(0.0) == pytest.approx(14.039)
    assert wq.chlorophyll_a_ndci(0.5) == pytest.approx(105.67775)
    # recalibrated coefficients: 10 + 80 * 0.2 + 150 * 0.04 = 32
    assert wq.chlorophyll_a_ndci(0.2, a0=10, a1=80, a2=150) == pytest.approx(32.0)


def test_chlorophyll_a_ndci_valid_range():
    # vertex -86.115 / (2 * 194.325) = -0.2215747, where chl = 4.4985481
    assert wq.chlorophyll_a_ndci(-0.2215) == pytest.approx(
        14.039 - 86.115 * 0.2215 + 194.325 * 0.2215**2
    )
    assert math.isnan(wq.chlorophyll_a_ndci(-0.2216))
    assert math.isnan(wq.chlorophyll_a_ndci(-0.5))
    assert math.isnan(wq.chlorophyll_a_ndci(0.5001))
    assert math.isnan(wq.chlorophyll_a_ndci(NAN))
    assert wq.chlorophyll_a_ndci(0.6, ndci_max=0.7) == pytest.approx(
        14.039 + 86.115 * 0.6 + 194.325 * 0.36
    )
    # negative polynomial values are undefined chlorophyll: -5 + 10 * 0.1 = -4
    assert math.isnan(wq.chlorophyll_a_ndci(0.1, a0=-5, a1=10, a2=0))


def test_chlorophyll_attrs_say_the_interval():
    out = wq.chlorophyll_a_ndci(xr.DataArray([0.0, 0.1], dims="x"))
    assert out.attrs["units"] == "ug L-1"
    low, high = out.attrs["ndci_interval"]
    assert low == pytest.approx(-0.2215747, abs=1e-7)
    assert high == 0.5
    assert "valid_range" not in out.attrs  # CF decoders would mask chl-a with it


# --------------------------------------------------------------------------- indices and masks


def test_indices_by_hand():
    assert wq.ndwi(0.08, 0.02) == pytest.approx((0.08 - 0.02) / (0.08 + 0.02))  # 0.6
    assert wq.mndwi(0.08, 0.002) == pytest.approx(0.078 / 0.082)  # 0.9512195
    assert wq.ndti_turbidity(0.05, 0.04) == pytest.approx(0.01 / 0.09)  # 0.1111
    assert wq.ndci(0.06, 0.04) == pytest.approx(0.02 / 0.10)  # 0.2


def test_indices_nan_where_undefined():
    assert math.isnan(wq.ndwi(0.0, 0.0))
    assert math.isnan(wq.ndwi(0.01, -0.02))  # -> 3: only a negative reflectance does that
    assert wq.ndwi(0.0, 0.02) == -1.0


def test_indices_promote_integer_dn_without_wrapping():
    # uint16 subtraction would wrap around: 100 - 200 = 65436
    out = wq.ndwi(np.array([100], dtype=np.uint16), np.array([200], dtype=np.uint16))
    assert out.dtype == np.float64
    assert out[0] == pytest.approx(-100 / 300)


def test_scl_water():
    np.testing.assert_array_equal(wq.scl_water(np.arange(12)), [False] * 6 + [True] + [False] * 5)
    assert wq.scl_water(6) is True


# --------------------------------------------------------------------------- array kinds


def test_numpy_in_numpy_out_keeps_float32():
    rho = np.array([0.01, 0.05, 0.1], dtype=np.float32)
    out = wq.nechad(rho)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:2], [3.003302211, 19.907882736], rtol=1e-6)
    assert np.isnan(out[2])


def test_list_and_series_inputs():
    np.testing.assert_allclose(wq.nechad([0.01, 0.05]), [3.003302211, 19.907882736])
    series = pd.Series([0.01, 0.05], index=["THAU01", "THAU02"])
    out = wq.nechad(series)
    assert isinstance(out, pd.Series)
    assert list(out.index) == ["THAU01", "THAU02"]
    assert out["THAU02"] == pytest.approx(19.907882736)
    with pytest.raises(lab.ConfigurationError, match="align"):
        wq.ndwi(series, pd.Series([0.1, 0.1], index=["a", "b"]))


def test_xarray_output_has_attributes_and_coords():
    rho = xr.DataArray(
        np.array([[0.01, 0.05]], dtype=np.float32),
        dims=("y", "x"),
        coords={"x": [10.0, 30.0], "y": [5.0]},
        attrs={"units": "1", "nodata": 0},
    )
    out = wq.nechad(rho)
    assert out.name == "turbidity"
    assert out.attrs["units"] == "FNU"
    assert "Nechad" in out.attrs["long_name"]
    assert "10.1117/12.830700" in out.attrs["references"]
    assert "nodata" not in out.attrs  # the input's attributes do not leak
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.x, [10.0, 30.0])
    for func, args, units in [
        (wq.spm_nechad2010, (rho,), "g m-3"),
        (wq.turbidity_dogliotti2015, (rho, rho), "FNU"),
        (wq.ndci, (rho, rho), "1"),
        (wq.ndti_turbidity, (rho, rho), "1"),
        (wq.chlorophyll_a_ndci, (rho,), "ug L-1"),
    ]:
        result = func(*args)
        assert result.attrs["units"] == units
        assert result.attrs["long_name"]
        assert "doi:" in result.attrs["references"]


def test_dataset_instead_of_band_is_a_clear_error():
    with pytest.raises(lab.ConfigurationError, match=r"ds\['red'\]"):
        wq.nechad(xr.Dataset({"red": ("x", [0.05])}))


class CountingScheduler:
    """A Dask scheduler that counts how often something is computed."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def test_dask_backed_inputs_stay_lazy():
    rho = xr.DataArray(
        da.from_array(np.array([0.01, 0.05, 0.06, 0.1], dtype=np.float32), chunks=2), dims="x"
    )
    scheduler = CountingScheduler()
    with dask.config.set(scheduler=scheduler):
        outputs = [
            wq.nechad(rho),
            wq.spm_nechad2010(rho),
            wq.nechad_inverse(rho * 100),
            wq.turbidity_dogliotti2015(rho, rho / 4),
            wq.chlorophyll_a_ndci(wq.ndci(rho * 1.2, rho)),
            wq.ndwi(rho, rho / 2),
            wq.mndwi(rho, rho / 2),
            wq.ndti_turbidity(rho, rho / 2),
        ]
        assert scheduler.calls == 0
        assert all(out.chunks is not None for out in outputs)
        values = outputs[0].compute()
    assert scheduler.calls == 1  # the counter does see computations
    np.testing.assert_allclose(values[:2], [3.003302211, 19.907882736], rtol=1e-6)
    # a bare dask array gives a dask array
    assert isinstance(wq.nechad(da.from_array(np.array([0.05]))), da.Array)


# --------------------------------------------------------------------------- cubes


def _cube(chunked: bool = True) -> xr.Dataset:
    """2 dates x 1 x 4 pixels: water, water (turbid), land (vegetation), cloud."""
    shape = (2, 1, 4)

    def band(values):
        return np.broadcast_to(np.array(values, dtype=np.float32), shape).copy()

    data = {
        "blue": band([0.03, 0.04, 0.03, 0.5]),
        "green": band([0.04, 0.06, 0.08, 0.5]),
        "red": band([0.05, 0.06, 0.04, 0.5]),
        "rededge1": band([0.06, 0.07, 0.2, 0.5]),
        "nir": band([0.02, 0.02, 0.4, 0.5]),
        "nir08": band([0.01, 0.015, 0.4, 0.5]),
        "swir16": band([0.002, 0.002, 0.2, 0.45]),
        "scl": np.broadcast_to(np.array([6, 6, 4, 9], dtype=np.uint8), shape).copy(),
    }
    coords = {
        "time": pd.to_datetime(["2022-01-10T10:40", "2022-01-25T10:40"]),
        "y": [4_800_010.0],
        "x": [500_010.0, 500_030.0, 500_050.0, 500_070.0],
    }
    ds = xr.Dataset({k: (("time", "y", "x"), v) for k, v in data.items()}, coords=coords)
    return ds.chunk({"time": 1, "x": 2}) if chunked else ds


def test_water_mask_methods():
    cube = _cube(chunked=False)
    expected = [True, True, False, False]
    for method in ("scl", "mndwi", "ndwi"):
        mask = wq.water_mask(cube, method)
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask.isel(time=0, y=0), expected, err_msg=method)
        assert mask.attrs["references"]
    mndwi_mask = wq.water_mask(cube, "mndwi")
    assert mndwi_mask.attrs["threshold"] == 0.0
    # the cloud has MNDWI = 0.05 / 0.95 > 0 but SCL 9 keeps it out ...
    assert not bool(mndwi_mask.isel(time=0, y=0, x=3))
    # ... unless SCL is ignored
    assert bool(wq.water_mask(cube, "mndwi", exclude_scl=None).isel(time=0, y=0, x=3))
    # a stricter threshold drops the first pixel: NDWI = (0.04-0.02)/0.06 = 0.333
    strict = wq.water_mask(cube, "ndwi", threshold=0.34)
    np.testing.assert_array_equal(strict.isel(time=0, y=0), [False, True, False, False])


def test_water_mask_errors():
    cube = _cube(chunked=False)
    with pytest.raises(lab.ConfigurationError, match="no threshold"):
        wq.water_mask(cube, "scl", threshold=0.1)
    with pytest.raises(lab.ConfigurationError, match="unknown water_mask method"):
        wq.water_mask(cube, "otsu")
    with pytest.raises(datacubes.BandNotFoundError, match="swir16") as info:
        wq.water_mask(cube.drop_vars("swir16"), "mndwi")
    assert "green" in str(info.value)  # lists the bands the cube has


def test_add_water_quality_values_masks_and_attributes():
    out = wq.add_water_quality(_cube()).compute()
    first = out.isel(time=0, y=0)
    np.testing.assert_array_equal(first.water, [True, True, False, False])
    # water pixel 0: red 0.05 -> Nechad 19.9078827 FNU, SPM 25.0370033 g/m3
    assert float(first.turbidity[0]) == pytest.approx(19.907882736, rel=1e-5)
    assert float(first.spm[0]) == pytest.approx(25.037003257, rel=1e-5)
    # NDTI (0.05 - 0.04) / 0.09; NDCI (0.06 - 0.05) / 0.11 = 0.0909091
    assert float(first.ndti_turbidity[0]) == pytest.approx(0.01 / 0.09, rel=1e-5)
    assert float(first.ndci[0]) == pytest.approx(0.01 / 0.11, rel=1e-5)
    n = 0.01 / 0.11  # chl = 14.039 + 86.115 n + 194.325 n^2 = 23.4733
    assert float(first.chlorophyll_a[0]) == pytest.approx(
        14.039 + 86.115 * n + 194.325 * n * n, rel=1e-5
    )
    for name in ("ndti_turbidity", "ndci", "turbidity", "chlorophyll_a", "spm"):
        assert np.isnan(first[name][2:]).all(), name  # land and cloud are masked
        assert out[name].attrs["units"], name
        assert out[name].attrs["references"], name
    assert out.turbidity.dtype == np.float32
    assert set(wq.OUTPUT_VARIABLES) <= set(out.data_vars)
    assert "red" in out.data_vars  # the input bands stay


def test_add_water_quality_dogliotti_and_recalibrated_coefficients():
    out = wq.add_water_quality(
        _cube(chunked=False),
        water="mndwi",
        turbidity="dogliotti2015",
        spm_coefficients={"A": 300.0, "C": 0.2},
        chlorophyll_coefficients={"a0": 10.0, "a1": 80.0, "a2": 150.0},
    ).isel(time=0, y=0)
    # pixel 1: red 0.06, nir08 0.015 -> the hand-worked blend 35.6442665
    assert float(out.turbidity[1]) == pytest.approx(35.644266531, rel=1e-5)
    # SPM with A = 300, C = 0.2 at red 0.05: 300 * 0.05 / 0.75 = 20
    assert float(out.spm[0]) == pytest.approx(20.0, rel=1e-5)
    n = 0.01 / 0.11
    assert float(out.chlorophyll_a[0]) == pytest.approx(10 + 80 * n + 150 * n * n, rel=1e-5)
    assert "Dogliotti" in out.turbidity.attrs["long_name"]


def test_add_water_quality_is_lazy():
    cube = _cube()
    scheduler = CountingScheduler()
    with dask.config.set(scheduler=scheduler):
        out = wq.add_water_quality(cube)
        masks = [wq.water_mask(cube, method) for method in ("scl", "mndwi", "ndwi")]
        assert scheduler.calls == 0
        assert all(mask.chunks is not None for mask in masks)
        assert all(out[name].chunks is not None for name in wq.OUTPUT_VARIABLES)
        out.turbidity.compute()
    assert scheduler.calls == 1


def test_add_water_quality_errors():
    cube = _cube(chunked=False)
    with pytest.raises(datacubes.BandNotFoundError, match="rededge1"):
        wq.add_water_quality(cube.drop_vars("rededge1"))
    with pytest.raises(datacubes.BandNotFoundError, match="nir08"):
        wq.add_water_quality(cube.drop_vars("nir08"), turbidity="dogliotti2015")
    with pytest.raises(lab.ConfigurationError, match="already has"):
        wq.add_water_quality(wq.add_water_quality(cube))
    with pytest.raises(lab.ConfigurationError, match="unknown turbidity"):
        wq.add_water_quality(cube, turbidity="petus2010")


# --------------------------------------------------------------------------- sample federation


def _read_sample_scene(sample_dir, item_id, coords):
    """The scene's COGs as reflectance, scaled and offset with the item's raster:bands."""
    import json

    import rasterio

    folder = sample_dir / "theia" / "sentinel-2-l2a" / item_id
    item = json.loads((folder / f"{item_id}.json").read_text())
    data = {}
    for name in ("green", "red", "rededge1", "nir", "nir08", "swir16", "scl"):
        asset = item["assets"][name]
        raster = asset["raster:bands"][0]
        with rasterio.open(folder / asset["href"]) as src:
            dn = src.read(1)
        if name == "scl":
            data[name] = (("y", "x"), dn)
            continue
        rho = (dn * raster["scale"] + raster["offset"]).astype(np.float32)
        rho[dn == raster["nodata"]] = np.nan
        data[name] = (("y", "x"), rho)
    return xr.Dataset(data, coords=coords)


@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["03.01", "04.00"])
def test_add_water_quality_recovers_sample_truth(sample_dir, sample_truth, baseline):
    """The sample writes red from truth turbidity (Nechad inverted) and rededge1 from truth
    chlorophyll-a (NDCI polynomial inverted), plus σ = 0.0003 noise: the forward algorithms must
    give the truth back to within that noise, on both sides of the 04.00 offset change."""
    acquisition = next(
        a
        for a in sample_truth["acquisitions"]
        if a["processing_baseline"] == baseline and a["cloud_cover"] == 0 and not a["nodata_wedge"]
    )
    with xr.open_dataset(sample_dir / "truth" / "truth.nc") as truth_file:
        truth = truth_file.sel(time=pd.Timestamp(acquisition["datetime"]).tz_localize(None))
        truth = truth.load()
    scene = _read_sample_scene(sample_dir, acquisition["item_id"], {"y": truth.y, "x": truth.x})
    out = wq.add_water_quality(scene.chunk({"y": 400})).compute()
    water = out.water.to_numpy()
    np.testing.assert_array_equal(water, truth.scl.to_numpy() == 6)
    assert water.sum() > 100_000
    # turbidity: dT/dρ ≈ 283-560 FNU per unit ρ, so σ = 0.0003 gives ≈ 0.1 FNU
    error = out.turbidity.to_numpy()[water] - truth.turbidity.to_numpy()[water]
    assert not np.isnan(error).any()
    assert np.median(np.abs(error)) < 0.15
    assert abs(error.mean()) < 0.02
    # chlorophyll-a: NDCI noise ≈ 0.004, slope ≈ 100 µg/L per NDCI unit
    error = out.chlorophyll_a.to_numpy()[water] - truth.chlorophyll_a.to_numpy()[water]
    assert np.isnan(error).mean() < 0.001
    assert np.nanmedian(np.abs(error)) < 1.0
    assert abs(np.nanmean(error)) < 0.15
    # the index masks find the same water as the generator's surface classes
    for method in ("mndwi", "ndwi"):
        agreement = (
            wq.water_mask(scene, method).to_numpy() == (truth.surface > 0).to_numpy()
        ).mean()
        assert agreement > 0.999, method


def test_optional_water_mask_on_the_algorithms():
    rho = xr.DataArray([0.01, 0.05, 0.05], dims="x")
    water = xr.DataArray([True, True, False], dims="x")
    out = wq.nechad(rho, water=water)
    np.testing.assert_allclose(out[:2], [3.003302211, 19.907882736])
    assert np.isnan(out[2])
    assert out.attrs["units"] == "FNU"
    # numpy, with a 0/1 integer mask (as written to Zarr)
    spm = wq.spm_nechad2010(np.array([0.05, 0.05]), water=np.array([0, 1], dtype=np.uint8))
    assert np.isnan(spm[0]) and spm[1] == pytest.approx(25.037003257)
    assert math.isnan(wq.turbidity_dogliotti2015(0.06, 0.015, water=False))
    assert math.isnan(wq.chlorophyll_a_ndci(0.1, water=False))
    assert wq.chlorophyll_a_ndci(0.1, water=True) == pytest.approx(24.59375)
    assert np.isnan(wq.ndci(rho, rho / 2, water=water)[2])
    assert np.isnan(wq.ndti_turbidity(rho, rho / 2, water=water)[2])
    with pytest.raises(lab.ConfigurationError, match="boolean"):
        wq.nechad(rho, water=rho)
