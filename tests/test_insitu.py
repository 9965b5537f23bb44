"""recipes.insitu: readers of real provider files into the tidy table, and bad input."""

from __future__ import annotations

import copy
import csv
import json
import threading
import warnings
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab import AssetReadError, ConfigurationError, EarthLabWarning
from recipes import InSituFormatError, insitu
from recipes.insitu._hubeau import distance_m, lambert93_to_lonlat
from recipes.insitu._units import O2_MG_PER_ML, SANDRE_PARAMETERS

DATA = Path(__file__).parent / "data" / "insitu"
ANALYSES = "hubeau-v1-qualite_rivieres-analyse_pc-05134550-page1.json"
STATIONS = "hubeau-v1-qualite_rivieres-station_pc-dept11.json"
GLIDER = "erddap-gliders-amelia-20180501T0000-temperature.csvp"
SOMLIT = "somlit-med-HYDRO-1995-2021.csv"
DSG = "pocean-ooi-phsen-seawater-ph-timeSeries.nc"


@pytest.fixture(scope="module")
def ref(reference_dir: Path) -> Path:
    return reference_dir / "insitu"


def quiet(reader, *args, **kwargs):
    """Call a reader whose source has zone-less times, checking it warns about them."""
    with pytest.warns(insitu.NaiveTimeWarning, match="read as UTC"):
        return reader(*args, **kwargs)


@pytest.fixture(scope="module")
def hubeau(ref: Path) -> insitu.InSituTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
        return insitu.read_hubeau(ref / ANALYSES, ref / STATIONS)


# --- Hub'Eau (real API v1 captures) ------------------------------------------------------------


def test_hubeau_first_analysis_row_is_the_json_first_record(ref, hubeau):
    record = json.loads((ref / ANALYSES).read_text())["data"][0]
    row = hubeau.data.iloc[0]
    assert row["station_id"] == record["code_station"] == "05134550"
    assert row["time"] == pd.Timestamp(
        f"{record['date_prelevement']}T{record['heure_prelevement']}", tz="UTC"
    )
    assert record["code_parametre"] == "1311" and record["libelle_parametre"] == "Oxygène dissous"
    assert row["parameter"] == SANDRE_PARAMETERS["1311"] == "dissolved_oxygen"
    assert row["value"] == record["resultat"] == 13.3
    assert row["unit"] == record["symbole_unite"] == "mg(O2)/L"
    assert row["qc_flag"] == 1  # code_remarque 1, code_qualification 1 "Correcte"
    assert row["source"] == "hubeau-naiades"


def test_hubeau_reads_every_record_and_flags_below_lq(ref, hubeau):
    records = json.loads((ref / ANALYSES).read_text())["data"]
    assert len(hubeau.data) == len(records) == 50 and hubeau.rejected.empty
    below = [i for i, r in enumerate(records) if r["code_remarque"] == "10"]
    assert len(below) == 12
    assert (hubeau.data.loc[below, "qc_flag"] == 6).all()
    assert (hubeau.data["qc_flag"] == 6).sum() == 12
    # data[1]: suspended matter "< LQ" 2 mg/L, no limite_quantification -> value = resultat
    assert records[1]["code_parametre"] == "1305" and records[1]["limite_quantification"] is None
    second = hubeau.data.iloc[1]
    assert (second["parameter"], second["value"], second["unit"]) == (
        "suspended_matter",
        2.0,
        "mg/L",
    )
    assert second["qc_flag"] == 6


def test_hubeau_lambert93_agrees_with_given_lonlat_within_1m(ref, hubeau):
    stations = json.loads((ref / STATIONS).read_text())["data"]
    assert len(stations) == 28
    for s in stations:
        assert s["code_projection"] == "26"
        lon, lat = lambert93_to_lonlat(s["coordonnee_x"], s["coordonnee_y"])
        assert distance_m(lon, lat, s["longitude"], s["latitude"]) < 1.0, s["code_station"]
    first = hubeau.data.iloc[0]
    assert first["lon"] == pytest.approx(2.043543575, abs=1e-9)
    assert first["lat"] == pytest.approx(43.433805116, abs=1e-9)
    lon, lat = lambert93_to_lonlat(622526.0, 6259880.0)
    assert distance_m(lon, lat, 2.043543575, 43.433805116) < 1.0


def test_hubeau_station_with_disagreeing_coordinates_is_reported(ref):
    stations = json.loads((ref / STATIONS).read_text())
    moved = copy.deepcopy(stations)
    moved["data"][0]["coordonnee_x"] += 500.0  # 500 m east of the given longitude/latitude
    table = insitu.read_hubeau(ref / ANALYSES, moved)
    assert table.data.empty and len(table.rejected) == 50
    assert table.rejected["reason"].str.contains("500 m apart").all()


def test_hubeau_analyses_of_unknown_station_are_reported(ref):
    table = insitu.read_hubeau(ref / ANALYSES)  # no station_pc, v1 analyses carry no position
    assert table.data.empty and len(table.rejected) == 50
    assert table.rejected["reason"].iloc[0].startswith("station 05134550 is not in the station_pc")
    assert "50 x station 05134550" in table.summary()


def test_hubeau_v2_style_page(recwarn):
    table = insitu.read(DATA / "hubeau-v2-analyse-example.json")
    data = table.data.set_index("parameter")
    assert len(table.data) + len(table.rejected) == 8
    assert data.loc["turbidity", "unit"] == "FNU" and data.loc["turbidity", "value"] == 12.5
    assert data.loc["chlorophyll_a", "value"] == 1.0  # "< LD": limite_detection, not resultat 0
    assert data.loc["chlorophyll_a", "qc_flag"] == 6
    assert data.loc["suspended_matter", "qc_flag"] == 3  # traces, but qualification uncertain
    assert data.loc["sandre_7073", "unit"] == "unité X"  # unknown code kept, and noted
    assert any("sandre_7073" in note for note in table.notes)
    assert (data["lon"] == 3.70).all()  # v2 analyses carry their own position
    reasons = " | ".join(table.rejected["reason"])
    for expected in ("code_remarque 0", "no sampling hour", "station 06000002", "'abc'"):
        assert expected in reasons
    assert any(issubclass(w.category, insitu.NaiveTimeWarning) for w in recwarn)


class _Server:
    """Serve fixed JSON bodies on 127.0.0.1 and record the paths asked for."""

    def __init__(self):
        self.bodies: dict[str, bytes] = {}
        self.asked: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.asked.append(self.path)
                body = server.bodies.get(self.path)
                if body is None:
                    self.send_response(404)
                    body = b'{"error": "not found"}'
                else:  # Hub'Eau answers 206 Partial Content while more pages follow
                    self.send_response(206 if b'"next": "http' in body else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def hubeau_server(ref):
    """The real analyse_pc page split in two pages, and the real station_pc page."""
    page = json.loads((ref / ANALYSES).read_text())
    stations = json.loads((ref / STATIONS).read_text())
    with _Server() as server:
        first, second = copy.deepcopy(page), copy.deepcopy(page)
        first["data"], second["data"] = page["data"][:25], page["data"][25:]
        first["next"] = f"{server.url}/analyse_pc?code_station=05134550&page=2&size=25"
        second["prev"], second["next"] = first["first"], None
        stations["next"] = None
        server.bodies = {
            "/analyse_pc?code_station=05134550&page=1&size=25": json.dumps(first).encode(),
            "/analyse_pc?code_station=05134550&page=2&size=25": json.dumps(second).encode(),
            "/station_pc?code_departement=11": json.dumps(stations).encode(),
        }
        yield server


def test_fetch_hubeau_follows_next_links_on_a_local_server(hubeau_server, hubeau):
    url = f"{hubeau_server.url}/analyse_pc?code_station=05134550&page=1&size=25"
    table = quiet(
        insitu.fetch_hubeau, url, stations_url=f"{hubeau_server.url}/station_pc?code_departement=11"
    )
    assert hubeau_server.asked == [
        "/analyse_pc?code_station=05134550&page=1&size=25",
        "/analyse_pc?code_station=05134550&page=2&size=25",
        "/station_pc?code_departement=11",
    ]
    pd.testing.assert_frame_equal(table.data, hubeau.data)
    assert table.source == url


def test_fetch_hubeau_stops_at_max_pages_and_says_so(hubeau_server):
    url = f"{hubeau_server.url}/analyse_pc?code_station=05134550&page=1&size=25"
    with pytest.warns(insitu.PagingLimitWarning, match="max_pages=1"):
        table = insitu.fetch_hubeau(
            url,
            stations_url=f"{hubeau_server.url}/station_pc?code_departement=11",
            max_pages=1,
            timezone="Europe/Paris",
        )
    assert len(table.data) == 25 and "1062 results" in table.notes[0]
    # Naïades times read as Paris legal time: 11:20 CET is 10:20 UTC
    assert table.data["time"].iloc[0] == pd.Timestamp("2012-02-20T10:20:00Z")


def test_fetch_hubeau_http_error_and_paging_loop(hubeau_server):
    with pytest.raises(AssetReadError, match="404"):
        insitu.fetch_hubeau(f"{hubeau_server.url}/nothing-here")
    loop = {"count": 1, "next": "https://example.invalid/a", "data": []}
    with pytest.raises(InSituFormatError, match="loops"):
        insitu.fetch_hubeau("https://example.invalid/a", fetch=lambda url: loop)
    with pytest.raises(ConfigurationError, match="max_pages"):
        insitu.fetch_hubeau("https://example.invalid/a", fetch=lambda url: loop, max_pages=0)
    empty = {"count": 0, "next": None, "data": []}
    assert insitu.fetch_hubeau("https://example.invalid/b", fetch=lambda url: empty).data.empty


# --- ERDDAP ------------------------------------------------------------------------------------


def test_erddap_csvp_glider_every_row_accounted_for(ref):
    table = insitu.read_erddap(ref / GLIDER, station_id="amelia-20180501T0000", lon=-70.9, lat=40.6)
    raw = pd.read_csv(ref / GLIDER)
    assert len(raw) == 18113
    assert len(table.data) + len(table.rejected) == 18113
    reasons = table.rejected["reason"].value_counts()
    assert reasons["missing value"] == raw["temperature (Celsius)"].isna().sum() == 753
    duplicates = raw.dropna().duplicated().sum()
    assert reasons["duplicate of an earlier row (kept once)"] == duplicates == 149
    first = table.data.iloc[0]
    assert (first["parameter"], first["value"], first["unit"]) == (
        "water_temperature",
        10.2863,
        "degC",
    )
    assert first["time"] == pd.Timestamp("2018-05-08T00:32:38Z")
    assert (table.data["qc_flag"] == 0).all()  # no _qc columns: no quality control
    assert any("without its depth" in note for note in table.notes)


def test_erddap_without_positions_asks_for_them(ref):
    with pytest.raises(InSituFormatError, match="lon= and lat="):
        insitu.read_erddap(ref / GLIDER, station_id="amelia")
    with pytest.raises(InSituFormatError, match="station_id="):
        insitu.read_erddap(ref / GLIDER, lon=-70.9, lat=40.6)


def test_erddap_csv_with_units_on_line_two():
    table = insitu.read(DATA / "erddap-two-line-header.csv")
    data = table.data
    turbidity = data[data["parameter"] == "turbidity"]
    assert list(turbidity["value"]) == [4.2, 4.6, -0.3]
    assert list(turbidity["unit"]) == ["NTU"] * 3  # NTU is never turned into FNU
    assert list(turbidity["qc_flag"]) == [1, 3, 4]  # QARTOD 1, 3; negative -> 4
    chl = data[data["parameter"] == "chlorophyll_a"]
    assert list(chl["value"]) == [10.5, 11.25, 12.5] and set(chl["unit"]) == {"µg/L"}
    assert (data["depth"] == 0.5).all() and (data["station_id"] == "thau_buoy").all()
    assert (table.rejected["reason"] == "missing coordinates (lon/lat)").sum() == 3
    assert (table.rejected["reason"] == "missing value").sum() == 2
    assert len(table.flagged) == 1 and "negative turbidity" in table.flagged["reason"].iloc[0]
    assert any("conductivity" in note for note in table.notes)


def test_erddap_variables_mapping():
    only = insitu.read_erddap(
        DATA / "erddap-two-line-header.csv", variables={"conductivity": "conductivity_25c"}
    )
    assert set(only.data["parameter"]) == {"conductivity_25c"}
    assert only.data["value"].iloc[0] == pytest.approx(51000.0)  # 5.1 S/m in µS/cm
    with pytest.raises(insitu.UnknownParameterError, match="chlorophyll_a"):
        insitu.read_erddap(DATA / "erddap-two-line-header.csv", variables={"chlorophyll": "chl"})
    with pytest.raises(InSituFormatError, match="no variable"):
        insitu.read_erddap(DATA / "erddap-two-line-header.csv", variables={"nope": "turbidity"})


# --- CF discrete sampling geometries -----------------------------------------------------------


def test_dsg_ooi_ph_values_at_given_times(ref):
    table = insitu.read(ref / DSG)
    data = table.data
    assert len(data) == 24 and table.rejected.empty
    assert set(data["parameter"]) == {"ph"} and set(data["unit"]) == {"1"}
    assert set(data["station_id"]) == {"ce02shsm"}
    assert (data["lon"] == -124.0).all() and (data["lat"] == 44.0).all()
    assert (data["depth"] == 7.0).all()
    at = data.set_index(data["time"].dt.round("ms"))["value"]
    assert at[pd.Timestamp("2016-09-27T00:30:19.655Z")] == pytest.approx(8.1080176, abs=1e-7)
    assert at[pd.Timestamp("2016-09-27T23:30:21.342Z")] == pytest.approx(8.10252874, abs=1e-8)
    assert any("thermistor_start" in note for note in table.notes)


def test_dsg_unknown_unit_is_reported_not_guessed(ref):
    mapping = {"thermistor_start": "water_temperature"}
    table = insitu.read_dsg(ref / DSG, variables=mapping)
    assert table.data.empty and len(table.rejected) == 24
    assert "'degree_Celcius' not understood" in table.rejected["reason"].iloc[0]
    fixed = insitu.read_dsg(ref / DSG, variables=mapping, units={"thermistor_start": "degC"})
    assert len(fixed.data) == 24


STATIONS_DSG = ["THAU_A", "THAU_B"]
TIMES = pd.to_datetime(["2021-10-03T10:00", "2021-10-03T11:00", "2021-10-03T12:00"])
TURBIDITY = np.array([[4.0, 4.5, 5.0], [7.0, 7.5, np.nan]])  # B has two observations


def _dsg_attrs(ds):
    ds.attrs["featureType"] = "timeSeries"
    ds["station_name"].attrs["cf_role"] = "timeseries_id"
    ds["lat"].attrs.update(standard_name="latitude", units="degrees_north")
    ds["lon"].attrs.update(standard_name="longitude", units="degrees_east")
    ds["time"].attrs["standard_name"] = "time"
    ds["turbidity"].attrs.update(units="FNU", coordinates="time lat lon station_name")
    ds["temperature"].attrs["units"] = "degC"  # no coordinates attribute: not a data variable
    return ds


def _layouts():
    import xarray as xr

    names = np.array(STATIONS_DSG, dtype="S6")
    lat, lon = np.array([43.40, 43.41]), np.array([3.60, 3.65])
    temp = TURBIDITY + 10
    orthogonal = xr.Dataset(
        {
            "station_name": ("station", names),
            "lat": ("station", lat),
            "lon": ("station", lon),
            "time": ("time", TIMES),
            "turbidity": (("station", "time"), TURBIDITY),
            "temperature": (("station", "time"), temp),
        }
    )
    times2d = np.array([TIMES, TIMES.where(~np.isnan(TURBIDITY[1]))])
    incomplete = orthogonal.drop_vars("time").rename_dims(time="obs")
    incomplete = incomplete.assign(time=(("station", "obs"), times2d))
    keep = ~np.isnan(TURBIDITY.ravel())
    flat_times = np.concatenate([TIMES, TIMES])[keep]
    contiguous = xr.Dataset(
        {
            "station_name": ("station", names),
            "lat": ("station", lat),
            "lon": ("station", lon),
            "row_size": ("station", np.array([3, 2])),
            "time": ("obs", flat_times),
            "turbidity": ("obs", TURBIDITY.ravel()[keep]),
            "temperature": ("obs", temp.ravel()[keep]),
        }
    )
    contiguous["row_size"].attrs["sample_dimension"] = "obs"
    order = np.array([0, 3, 1, 4, 2])  # interleaved stations
    indexed = contiguous.drop_vars("row_size").isel(obs=order)
    indexed["station_index"] = ("obs", np.array([0, 0, 0, 1, 1])[order])
    indexed["station_index"].attrs["instance_dimension"] = "station"
    return {
        "orthogonal": orthogonal,
        "incomplete": incomplete,
        "contiguous": contiguous,
        "indexed": indexed,
    }


@pytest.mark.parametrize("layout", ["orthogonal", "incomplete", "contiguous", "indexed"])
def test_dsg_layouts_give_the_same_table(layout, tmp_path):
    path = tmp_path / f"{layout}.nc"
    _dsg_attrs(_layouts()[layout]).to_netcdf(path, engine="h5netcdf")
    table = insitu.read_dsg(path)
    data = table.data.sort_values(["station_id", "time"]).reset_index(drop=True)
    assert list(data["station_id"]) == ["THAU_A"] * 3 + ["THAU_B"] * 2
    assert list(data["value"]) == [4.0, 4.5, 5.0, 7.0, 7.5]
    assert list(data["lon"]) == [3.60] * 3 + [3.65] * 2
    assert data["time"].iloc[3] == pd.Timestamp("2021-10-03T10:00Z")
    assert set(data["parameter"]) == {"turbidity"}  # temperature has no coordinates attribute
    # the orthogonal grid has a hole for THAU_B at 12:00: reported, not dropped
    assert len(table.rejected) == (1 if layout == "orthogonal" else 0)


def test_dsg_refuses_other_feature_types(tmp_path):
    ds = _dsg_attrs(_layouts()["orthogonal"])
    ds.attrs["featureType"] = "profile"
    ds.to_netcdf(tmp_path / "profile.nc", engine="h5netcdf")
    with pytest.raises(InSituFormatError, match="'profile'"):
        insitu.read(tmp_path / "profile.nc")


# --- SOMLIT ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def somlit(ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
        return insitu.read_somlit(ref / SOMLIT)


def _somlit_rows(ref):
    with (ref / SOMLIT).open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_somlit_chla_values_and_flags(ref, somlit):
    rows = _somlit_rows(ref)
    first = rows[0]
    assert (first["nomSite*"], first["DATE"], first["PROF_TEXT"]) == ("Point B", "1995-01-18", "F")
    assert (first["CHLA"], first["qCHLA"]) == ("0.26", "2")
    chla = somlit.data[somlit.data["parameter"] == "chlorophyll_a"]
    at = chla.set_index(["station_id", "time", "depth"])
    key = ("Point B", pd.Timestamp("1995-01-18T08:00Z"))
    assert at.loc[(*key, 50.0), "value"] == 0.26 and at.loc[(*key, 50.0), "qc_flag"] == 1
    assert at.loc[(*key, 1.0), "value"] == 0.30  # the surface sample of the same cast
    assert (at["unit"] == "µg/L").all()
    seven = next(r for r in rows if r["qCHLA"] == "7")  # good, outside SOMLIT protocols
    zero = next(r for r in rows if r["qCHLA"] == "0")  # below detection limit
    for row, flag in ((seven, 2), (zero, 6)):
        found = at.loc[
            (
                row["nomSite*"],
                pd.Timestamp(f"{row['DATE']}T{row['HEURE']}Z"),
                float(row["PROF_NUM"]),
            )
        ]
        assert found["value"] == float(row["CHLA"]) and found["qc_flag"] == flag


def test_somlit_every_value_cell_accounted_for(ref, somlit):
    rows = _somlit_rows(ref)
    assert len(rows) == 6393
    assert len(somlit.data) + len(somlit.rejected) == 6393 * 15
    no_sample = (somlit.rejected["reason"] == "missing value (SOMLIT code 9: no sample)").sum()
    assert no_sample == sum(
        r[f"q{c}"] == "9" and r[c] == "NA" for r in rows for c in insitu_somlit_columns()
    )
    sites = somlit.data.groupby("station_id")[["lon", "lat"]].first()
    assert sites.loc["Point B"].tolist() == [7.31667, 43.6833]
    assert sites.loc["Sola"].tolist() == [3.145, 42.4883]
    assert sites.loc["Frioul"].tolist() == [5.29167, 43.2417]


def insitu_somlit_columns():
    from recipes.insitu._somlit import COLUMNS

    return list(COLUMNS)


def test_somlit_oxygen_converted_from_ml_per_litre(ref, somlit):
    row = next(r for r in _somlit_rows(ref) if r["qO"] == "2")
    oxygen = somlit.data[somlit.data["parameter"] == "dissolved_oxygen"].set_index(
        ["station_id", "time", "depth"]
    )
    found = oxygen.loc[
        (row["nomSite*"], pd.Timestamp(f"{row['DATE']}T{row['HEURE']}Z"), float(row["PROF_NUM"]))
    ]
    assert found["value"] == pytest.approx(float(row["O"]) * 1.42903, rel=1e-5)
    assert pytest.approx(1.42903, abs=5e-6) == O2_MG_PER_ML
    assert found["unit"] == "mg(O2)/L"


def test_somlit_semicolon_export_with_999999():
    table = quiet(insitu.read, DATA / "somlit-semicolon-999999.csv")
    data = table.data.set_index(["parameter", "time"])
    june15 = pd.Timestamp("2021-06-15T09:30Z")
    assert data.loc[("suspended_matter", june15), "qc_flag"] == 4  # -0.40 mg/L
    assert data.loc[("chlorophyll_a", pd.Timestamp("2021-06-01T09:30Z")), "qc_flag"] == 6
    reasons = set(table.rejected["reason"])
    assert reasons == {
        "missing value (SOMLIT code 9: no sample)",
        "SOMLIT quality code '12' unknown (0 to 9)",
    }


# --- the tidy table of the sample federation ---------------------------------------------------


def _write_sample_parquet(path: Path) -> None:
    """The rows of sample-style-THAU01.csv, typed as the sample generator writes them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = [datetime(2021, 10, 3, 10, 12, tzinfo=UTC)] * 2 + [
        datetime(2021, 10, 18, 9, 5, tzinfo=UTC)
    ] * 2
    t.append(datetime(2022, 1, 26, 11, 41, tzinfo=UTC))
    table = pa.table(
        {
            "station_id": pa.array(["THAU01"] * 5, pa.string()),
            "time": pa.array(t, pa.timestamp("us", tz="UTC")),
            "lon": pa.array([3.5712] * 5, pa.float64()),
            "lat": pa.array([43.3921] * 5, pa.float64()),
            "parameter": ["turbidity", "chlorophyll_a", "turbidity", "chlorophyll_a", "turbidity"],
            "value": pa.array([5.21, 12.47, 7.80, 9.03, 1.02], pa.float64()),
            "unit": ["FNU", "µg/L", "FNU", "µg/L", "FNU"],
            "qc_flag": pa.array([1, 1, 2, 1, 6], pa.int8()),
            "source": ["odatis-sample"] * 5,
        }
    )
    pq.write_table(table, path)


def test_sample_style_parquet_equals_csv(tmp_path):
    parquet = tmp_path / "THAU01.parquet"
    _write_sample_parquet(parquet)
    from_csv = insitu.read(DATA / "sample-style-THAU01.csv")
    from_parquet = insitu.read(parquet)
    pd.testing.assert_frame_equal(from_csv.data, from_parquet.data)
    assert from_csv.rejected.empty and from_parquet.rejected.empty
    insitu.validate(from_parquet)
    assert from_csv.data["time"].iloc[4] == pd.Timestamp("2022-01-26T11:41Z")


@pytest.mark.slow
def test_sample_federation_parquet_equals_csv(request):
    sample_dir = request.getfixturevalue("sample_dir")
    parquets = sorted((sample_dir / "odatis" / "insitu-water-quality").glob("*/*.parquet"))
    assert len(parquets) == 7
    for parquet in parquets:
        from_parquet = insitu.read(parquet)
        from_csv = insitu.read(parquet.with_suffix(".csv"))
        pd.testing.assert_frame_equal(from_parquet.data, from_csv.data)
        written = pd.read_parquet(parquet)
        pd.testing.assert_frame_equal(from_parquet.data.drop(columns="depth"), written)
        assert from_parquet.rejected.empty
        assert set(from_parquet.data["parameter"]) == {"turbidity", "chlorophyll_a"}
        insitu.validate(from_parquet)


# --- SeaDataNet ODV ----------------------------------------------------------------------------


def test_odv_profiles_example():
    table = insitu.read(DATA / "odv-profiles-example.txt")
    data = table.data.set_index(["station_id", "depth", "parameter"])
    assert data.loc[("TH-A", 5.0, "water_temperature"), "qc_flag"] == 2
    assert data.loc[("TH-A", 5.0, "chlorophyll_a"), "qc_flag"] == 6  # QV "Q"
    assert data.loc[("TH-A", 5.0, "chlorophyll_a"), "value"] == 8.2
    assert data.loc[("TH-A", 5.0, "chlorophyll_a"), "time"] == pd.Timestamp("2021-10-03T10:20Z")
    assert data.loc[("TH-B", 4.0, "chlorophyll_a"), "lon"] == 3.6420  # metadata carried down
    assert (table.data["unit"][table.data["parameter"] == "chlorophyll_a"] == "µg/L").all()
    assert list(table.rejected["raw"]) == ["TEMPPR01=, QV=9"]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.csv", "blank.json"])
def test_empty_files_raise_a_clear_error(name):
    with pytest.raises(InSituFormatError, match="is empty"):
        insitu.read(DATA / name)
    reader = insitu.read_hubeau if name.endswith(".json") else insitu.read_table
    with pytest.raises(InSituFormatError, match="is empty"):
        reader(DATA / name)


def test_header_only_and_missing_files(tmp_path):
    header = tmp_path / "header.csv"
    header.write_text(",".join(insitu.COLUMNS) + "\n")
    with pytest.raises(InSituFormatError, match="no data rows"):
        insitu.read(header)
    with pytest.raises(InSituFormatError, match="does not exist"):
        insitu.read(tmp_path / "nowhere.csv")


def test_bad_rows_are_reported_one_by_one():
    table = insitu.read(DATA / "table-bad-rows.csv")
    reasons = dict(zip(table.rejected["row"], table.rejected["reason"], strict=True))
    assert reasons["table-bad-rows.csv line 3"] == "duplicate of an earlier row (kept once)"
    assert reasons["table-bad-rows.csv line 7"] == "missing coordinates (lon/lat)"
    assert reasons["table-bad-rows.csv line 8"].startswith("unknown parameter 'secchi_depth'")
    assert reasons["table-bad-rows.csv line 9"] == "value 'n.d.' is not a finite number"
    assert reasons["table-bad-rows.csv line 10"] == "missing value"
    assert reasons["table-bad-rows.csv line 12"].startswith("unit 'furlongs' not understood")
    assert reasons["table-bad-rows.csv line 13"] == "time 'yesterday' is not an ISO 8601 date-time"
    assert reasons["table-bad-rows.csv line 15"].startswith("qc_flag '12' is not")
    assert len(table.data) + len(table.rejected) == 14
    text = table.summary()
    assert "rejected: 8 row(s)" in text and "1 x missing value" in text


def test_negative_values_are_flagged_bad_not_dropped():
    data = insitu.read(DATA / "table-bad-rows.csv").data
    at = data.set_index(["time", "parameter"])
    t = pd.Timestamp("2021-10-03T10:30Z")
    assert at.loc[(t, "turbidity"), ["value", "qc_flag"]].tolist() == [-1.5, 4]
    assert at.loc[(t, "suspended_matter"), ["value", "qc_flag"]].tolist() == [-0.2, 4]
    assert at.loc[(t, "water_temperature"), ["value", "qc_flag"]].tolist() == [-1.2, 1]
    # 12:45+02:00 is 10:45 UTC; 0.004 mg/L of chlorophyll is 4 µg/L
    row = at.loc[(pd.Timestamp("2021-10-03T10:45Z"), "chlorophyll_a")]
    assert (row["value"], row["unit"]) == (4.0, "µg/L")


def test_naive_times_warn_or_error_or_use_the_zone_given():
    path = DATA / "table-naive-times.csv"
    with pytest.warns(insitu.NaiveTimeWarning) as caught:
        utc = insitu.read(path)
    assert issubclass(caught[0].category, EarthLabWarning)
    assert caught[0].filename == __file__  # points at the caller
    assert utc.data["time"].iloc[0] == pd.Timestamp("2021-10-03T10:40Z")
    with pytest.raises(InSituFormatError, match="timezone="):
        insitu.read(path, naive_time="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paris = insitu.read(path, timezone="Europe/Paris")
    assert paris.data["time"].iloc[0] == pd.Timestamp("2021-10-03T08:40Z")  # CEST = UTC+2
    # 02:30 on 2021-10-31 happened twice in Paris (end of summer time): reported
    assert paris.rejected["reason"].tolist() == [
        "local time that does not exist or is ambiguous in Europe/Paris"
    ]
    assert paris.data["time"].iloc[-1] == pd.Timestamp("2021-10-03T10:40Z")  # had a Z


def test_unknown_parameter_asked_for_lists_the_known_ones():
    with pytest.raises(insitu.UnknownParameterError, match="secchi") as error:
        insitu.read(DATA / "sample-style-THAU01.csv", parameters=["turbidity", "secchi"])
    assert "chlorophyll_a" in str(error.value) and "suspended_matter" in str(error.value)
    only = insitu.read(DATA / "sample-style-THAU01.csv", parameters="turbidity")
    assert set(only.data["parameter"]) == {"turbidity"} and len(only.data) == 3


def test_invalid_options_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="naive_time"):
        insitu.read(DATA / "sample-style-THAU01.csv", naive_time="local")
    with pytest.raises(ConfigurationError, match="IANA"):
        insitu.read(DATA / "sample-style-THAU01.csv", timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError, match="format="):
        insitu.read(DATA / "sample-style-THAU01.csv", format="xlsx")


def test_sniffing(ref):
    assert insitu.sniff(ref / ANALYSES) == "hubeau"
    assert insitu.sniff(ref / GLIDER) == "erddap"
    assert insitu.sniff(ref / DSG) == "dsg"
    assert insitu.sniff(ref / SOMLIT) == "somlit"
    assert insitu.sniff(DATA / "erddap-two-line-header.csv") == "erddap"
    assert insitu.sniff(DATA / "odv-profiles-example.txt") == "odv"
    with pytest.raises(InSituFormatError, match="format="):
        insitu.read(ref / "grstbx-odatis_stations_s2tiles.csv")
    with pytest.raises(InSituFormatError, match="ERDDAP error response"):
        insitu.read(ref / "erddap-search-no-results-404.txt")


def test_read_several_formats_into_one_table(ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
        table = insitu.read(
            [ref / ANALYSES, DATA / "erddap-two-line-header.csv", ref / STATIONS, ref / DSG]
        )
    assert table.data.groupby("source").size().to_dict() == {
        "cf-dsg": 24,
        "erddap": 10,
        "hubeau-naiades": 50,
    }
    insitu.validate(table)
    again = insitu.concat([table, table])
    assert len(again.data) == len(table.data)  # a table read twice: every copy reported
    assert (again.rejected["reason"] == "duplicate of an earlier row (kept once)").sum() == 84


def test_read_gives_each_reader_its_own_options(ref):
    table = insitu.read([ref / GLIDER, ref / DSG], station_id="amelia", lon=-70.9, lat=40.6)
    assert table.data.groupby("station_id").size().to_dict() == {"amelia": 17211, "ce02shsm": 24}
    with pytest.raises(ConfigurationError, match=r"\['lon'\] are not options of the \['table'\]"):
        insitu.read(DATA / "sample-style-THAU01.csv", lon=3.0)


def test_validate_names_the_columns_at_fault():
    good = insitu.read(DATA / "sample-style-THAU01.csv").data
    insitu.validate(good)
    bad = good.drop(columns="source").assign(
        time=good["time"].dt.tz_localize(None),
        qc_flag=good["qc_flag"].astype("int64"),
        parameter=["turbidity", "chl", "turbidity", "chl", "turbidity"],
        lat=[43.0, 91.0, 43.0, 43.0, np.nan],
    )
    with pytest.raises(insitu.InSituSchemaError) as error:
        insitu.validate(bad)
    message = str(error.value)
    for fragment in (
        "column 'source' is missing",
        "column 'time' must be timezone-aware UTC",
        "column 'qc_flag' must be int8",
        "column 'parameter' has unknown parameter(s) ['chl']",
        "column 'lat' has values outside [-90, 90]",
        "column 'lat' has 1 missing value(s)",
    ):
        assert fragment in message
    grams = good.assign(unit=["FNU", "mg/m3", "FNU", "µg/L", "FNU"])
    with pytest.raises(insitu.InSituSchemaError, match=r"1 chlorophyll_a value\(s\) in 'mg/m3'"):
        insitu.validate(grams)
    paris = good.assign(time=good["time"].dt.tz_convert("Europe/Paris"))
    with pytest.raises(insitu.InSituSchemaError, match="column 'time' must be in UTC"):
        insitu.validate(paris)


def test_insitu_table_checks_its_report_columns():
    good = insitu.read(DATA / "sample-style-THAU01.csv")
    with pytest.raises(ConfigurationError, match="rejected"):
        insitu.InSituTable(good.data, pd.DataFrame({"why": []}), good.flagged, "x")
    with pytest.raises(insitu.InSituSchemaError, match="column 'unit' is missing"):
        insitu.InSituTable(good.data.drop(columns="unit"), good.rejected, good.flagged, "x")
    assert "InSituTable from sample-style-THAU01.csv: 5 rows" in repr(good)
