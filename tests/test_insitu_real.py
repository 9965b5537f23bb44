"""The in-situ readers on real files of other producers (tests/data/insitu-real/, SOURCES.md).

Every expected value was read by hand in the file (text lines, or netCDF variables) and is
written literally here with where it comes from. Files the lab does not read are refused with a
message that says what to do. Where a defect needs a damaged file (truncated download, default
fill padding, a UTC offset in time units, Latin-1 text), the damage is made here, at run time, on
a copy of a real file.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pandas as pd
import pytest

from recipes import InSituFormatError, insitu
from recipes.insitu._odv import P01
from recipes.insitu._units import P06_UNITS, PARAMETERS, as_udunits, convert

REAL = Path(__file__).parent / "data" / "insitu-real"
SOURCES = REAL / "SOURCES.md"
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|(?P<cells>.*)\|$")


def _read(name: str, **kwargs: Any) -> insitu.InSituTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
        return insitu.read(REAL / name, **kwargs)


def _row(table: insitu.InSituTable, **where: object) -> pd.Series:
    data = table.data
    mask = np.ones(len(data), dtype=bool)
    for column, value in where.items():
        mask &= data[column] == value
    assert mask.sum() == 1, (where, data[mask])
    return data[mask].iloc[0]


# -- SOURCES.md --------------------------------------------------------------------------


def test_every_file_is_listed_with_origin_licence_and_size() -> None:
    rows = {}
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        found = ROW.match(line)
        if found:
            rows[found["file"]] = [c.strip() for c in found["cells"].split("|")]
    files = sorted(p.name for p in REAL.iterdir() if p.name != "SOURCES.md")
    assert len(files) >= 20
    assert sorted(rows) == files
    for name, (origin, licence, size, *_rest) in rows.items():
        assert "github.com" in origin and licence, name
        assert int(size) == (REAL / name).stat().st_size, name


# -- CF-DSG netCDF -----------------------------------------------------------------------


def test_ooi_ph_time_series() -> None:
    table = _read("pocean-ooi-phsen-seawater-ph-timeSeries.nc")
    # pH[0] = 8.108017603921079 at time[0] = 1474936219.655 s since 1970-01-01T00:00:00Z;
    # station ce02shsm (cf_role timeseries_id), lat 44, lon -124, z 7 m (positive down)
    first = table.data.iloc[0]
    assert (first["station_id"], first["parameter"], first["unit"]) == ("ce02shsm", "ph", "1")
    assert first["value"] == pytest.approx(8.108017603921079)
    assert first["time"] == pd.Timestamp("2016-09-27T00:30:19.655Z")
    assert (first["lon"], first["lat"], first["depth"]) == (-124.0, 44.0, 7.0)
    assert len(table.data) == 24


@pytest.mark.parametrize(
    "name",
    [
        "pocean-timeseries-om-single.nc",
        "pocean-timeseries-om-multiple.nc",
        "pocean-timeseries-im-multiple.nc",
    ],
)
def test_air_temperature_named_temperature_is_not_water_temperature(name: str) -> None:
    # temperature:standard_name = "air_temperature", units "Celsius": the name is only a hint
    with pytest.raises(InSituFormatError, match=r"temperature \(air_temperature\).*variables="):
        _read(name)


def test_a_variable_mapped_by_hand_is_read() -> None:
    # time = [0, 3600] s since 1990-01-01; temperature = [34.109104, 17.252682] Celsius;
    # lon 42, lat 13, station_name "Station-0", alt 6 m positive up... (depth -6)
    table = _read("pocean-timeseries-om-single.nc", variables={"temperature": "water_temperature"})
    second = _row(table, time=pd.Timestamp("1990-01-01T01:00Z"))
    assert second["value"] == pytest.approx(17.252682)
    assert (second["station_id"], second["unit"], second["lon"], second["lat"]) == (
        "Station-0",
        "degC",
        42.0,
        13.0,
    )
    # 6 m above the surface (it is air temperature) is no water sample: every row flagged 4
    assert (second["depth"], second["qc_flag"]) == (-6.0, 4)
    assert len(table.data) == 100 and set(table.data["qc_flag"]) == {4}
    assert len(table.flagged) == 100
    assert table.flagged["reason"].str.startswith("depth -6.0 m is outside the plausible").all()


def test_no_feature_type_but_a_station_role_is_read_with_a_note() -> None:
    # no global featureType; station_name has cf_role timeseries_id; temp is air_temperature
    with pytest.raises(InSituFormatError, match=r"temp \(air_temperature\)"):
        _read("cc-bad-instance.nc")


@pytest.mark.parametrize("name", ["pocean-qc-month.nc", "cc-bad_units.nc"])
def test_no_feature_type_says_why_and_what_to_do(name: str) -> None:
    with pytest.raises(
        InSituFormatError, match=r"no global featureType.*featureType = 'timeSeries'"
    ):
        _read(name)


@pytest.mark.parametrize(
    ("name", "feature"),
    [
        ("pocean-profile-om-single.nc", "Profile"),
        ("pocean-profile-2011_basis_ctd.nc", "profile"),
        ("pocean-sensor_with_depths_1.nc", "timeSeriesProfile"),
        ("pocean-timeseriesProfile-r-ctd-single.nc", "timeSeriesProfile"),
        ("pocean-trajectory-im-single.nc", "trajectory"),
        ("pocean-trajectory-cr-multiple.nc", "trajectory"),  # contiguous ragged
        ("pocean-trajectory-ir-multiple.nc", "trajectory"),  # indexed ragged
        ("pocean-trajectoryProfile-cr-multiple.nc", "trajectoryProfile"),
    ],
)
def test_other_feature_types_are_refused_with_what_to_do(name: str, feature: str) -> None:
    with pytest.raises(InSituFormatError, match=f"featureType is '{feature}'.*read_table"):
        _read(name)


def _copy(tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copyfile(REAL / name, copy)
    return copy


def test_truncated_netcdf3_download_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "half.nc"
    copy.write_bytes((REAL / "pocean-timeseries-om-single.nc").read_bytes()[:1800])
    with pytest.raises(InSituFormatError, match=r"truncated.*[Dd]ownload it again"):
        insitu.read(copy, variables={"temperature": "water_temperature"})


def test_truncated_netcdf4_download_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "half.nc"
    copy.write_bytes((REAL / "pocean-ooi-phsen-seawater-ph-timeSeries.nc").read_bytes()[:40000])
    with pytest.raises(InSituFormatError, match=r"(?s)truncated file.*download it again"):
        insitu.read(copy)


def test_default_fill_without_fill_value_attribute_is_no_data(tmp_path: Path) -> None:
    copy = _copy(tmp_path, "pocean-timeseries-om-single.nc")
    with netCDF4.Dataset(copy, "a") as ds:  # temperature has no _FillValue attribute
        assert "_FillValue" not in ds["temperature"].ncattrs()
        ds["temperature"][0] = netCDF4.default_fillvals["f4"]
    table = insitu.read(copy, variables={"temperature": "water_temperature"})
    assert len(table.data) == 99 and table.data["value"].max() < 1e30
    assert pd.Timestamp("1990-01-01T00:00Z") not in set(table.data["time"])


def test_time_units_with_a_utc_offset(tmp_path: Path) -> None:
    copy = _copy(tmp_path, "pocean-timeseries-om-single.nc")
    with netCDF4.Dataset(copy, "a") as ds:
        ds["time"].units = "seconds since 1990-01-01 00:00:00 +1:00"
    table = insitu.read(copy, variables={"temperature": "water_temperature"})
    assert table.data["time"].min() == pd.Timestamp("1989-12-31T23:00Z")


def test_longitude_0_360_and_implausible_values(tmp_path: Path) -> None:
    copy = _copy(tmp_path, "pocean-timeseries-om-single.nc")
    with netCDF4.Dataset(copy, "a") as ds:
        ds["lon"][...] = 350.0
        ds["temperature"][1] = 350.0
        ds["alt"][...] = -6.0  # 6 m below the surface (the file's +6 m up is flagged bad)
    table = insitu.read(copy, variables={"temperature": "water_temperature"})
    assert set(table.data["lon"]) == {-10.0}
    hot = _row(table, time=pd.Timestamp("1990-01-01T01:00Z"))
    assert (hot["value"], hot["qc_flag"]) == (350.0, 4)
    assert table.flagged["reason"].str.contains("plausible range").sum() == 1


# -- SeaDataNet / ODV spreadsheets -------------------------------------------------------


def test_odv_profiles_keep_their_depths() -> None:
    # sample_ODV_qv.txt lines 19-20: same station S01 and time, "Sampling depth" (P01
    # ADEPZZ01) 3 then 4, Salinity (P01 ODSDM021, P06 UPPT) 30 with QV 1 on both
    table = _read("divand-sample_ODV_qv.txt")
    salinity = table.data[table.data["parameter"] == "salinity"].sort_values("depth")
    assert salinity["depth"].tolist() == [3.0, 4.0]
    assert salinity["value"].tolist() == [30.0, 30.0]
    assert set(salinity["qc_flag"]) == {1}
    assert not table.rejected["reason"].str.contains("duplicate").any()


@pytest.mark.parametrize(
    ("name", "day", "salinity"),
    [("divand-sample_ODV.txt", "2010-01-01", 30.0), ("divand-sample_ODV2.txt", "2010-01-02", 31.0)],
)
def test_odv_sample_station(name: str, day: str, salinity: float) -> None:
    # line 19: BE2016/03A S01 B <day>T00:00:00.000, lon 10, lat 20, Sampling depth 3,
    # Temperature empty (QV 9), Salinity <salinity> QV 1
    table = _read(name)
    row = _row(table, parameter="salinity")
    assert row["station_id"] == "S01" and row["time"] == pd.Timestamp(f"{day}T00:00Z")
    assert (row["lon"], row["lat"], row["depth"], row["value"]) == (10.0, 20.0, 3.0, salinity)
    assert table.rejected["reason"].str.contains("missing value").any()


UNCONFIRMED_P01 = {"pH": "ACIDZZXX", "Dissolved oxygen": "DOXYSE01", "Chlorophyll-a": "CPHLSPPC"}


def test_odv_p01_codes_of_unconfirmed_meaning_are_not_read_but_listed() -> None:
    # sample_ODV_qv.txt SDN_parameter_mapping: pH ACIDZZXX (P06 UUPH), Dissolved oxygen
    # DOXYSE01 (UMGL), Chlorophyll-a CPHLSPPC (UGPL); their NVS definitions could not be
    # confirmed, so the reader does not guess: not read, and the notes say so
    table = _read("divand-sample_ODV_qv.txt")
    assert set(table.data["parameter"]) == {"salinity"}
    (note,) = [n for n in table.notes if "variable(s) not read" in n]
    assert all(f"'{name}'" in note for name in UNCONFIRMED_P01)
    assert not set(UNCONFIRMED_P01.values()) & set(P01)


def test_odv_unmapped_p01_variables_are_read_when_named() -> None:
    # lines 20-21: S01 2010-01-01, Sampling depth 3 then 4, pH 8.15 QV 1 (P06 UUPH, pH
    # units: no conversion); Dissolved oxygen and Chlorophyll-a empty with QV 9
    mapping = {"pH": "ph", "Dissolved oxygen": "dissolved_oxygen", "Chlorophyll-a": "chlorophyll_a"}
    table = _read("divand-sample_ODV_qv.txt", variables=mapping)
    got = table.data.sort_values("depth")[["depth", "parameter", "value", "unit", "qc_flag"]]
    assert got.values.tolist() == [[3.0, "ph", 8.15, "1", 1], [4.0, "ph", 8.15, "1", 1]]
    assert sorted(table.rejected["raw"]) == [
        "Chlorophyll-a=, QV=9",
        "Chlorophyll-a=, QV=9",
        "Dissolved oxygen=, QV=9",
        "Dissolved oxygen=, QV=9",
    ]
    assert set(table.rejected["reason"]) == {"missing value"}


def test_odv_of_another_project_with_its_depth_column() -> None:
    # BlackSea_2profiles.txt (ODV export, QV:WOD flags): line 12 station 11570900,
    # 1991-09-03T16:25, lon 28.3333, lat 43.167, Depth 0.0, Temperature [C] 22.208,
    # Salinity [psu] 15.7020; line 19 (station 11570901) Depth 30.0, Temperature 9.954
    table = _read("divand-BlackSea_2profiles.txt")
    first = _row(table, station_id="11570900", depth=0.0, parameter="water_temperature")
    assert first["time"] == pd.Timestamp("1991-09-03T16:25Z") and first["value"] == 22.208
    assert (first["lon"], first["lat"], first["unit"], first["qc_flag"]) == (
        28.3333,
        43.167,
        "degC",
        0,
    )
    deep = _row(table, station_id="11570901", depth=30.0, parameter="water_temperature")
    assert deep["value"] == 9.954
    assert _row(table, station_id="11570900", depth=0.0, parameter="salinity")["value"] == 15.702
    assert len(table.data) == 30


def test_emodnet_aggregated_odv() -> None:
    # sample_ODV_aggregated.txt, first data row (station 480, 1996-06-02T09:00:59):
    # Depth [m] 198.39999, ITS-90 water temperature [degrees C] 10, Water body salinity
    # [per mille] 38
    table = _read("divand-sample_ODV_aggregated.txt")
    at = {"station_id": "480", "depth": 198.39999}
    assert _row(table, parameter="water_temperature", **at)["value"] == 10.0
    assert _row(table, parameter="salinity", **at)["value"] == 38.0
    assert _row(table, parameter="salinity", **at)["time"] == pd.Timestamp("1996-06-02T09:00:59Z")


def test_odv_time_series_reads_the_sample_time() -> None:
    # time_series_small.txt, line 2 after the header: time_ISO8601 2009-10-23T15:56:00,
    # Water body dissolved oxygen concentration [umol/l] 193.39062, Depth [m] 856
    table = _read("divand-time_series_small.txt")
    row = _row(table, time=pd.Timestamp("2009-10-23T15:56Z"))
    assert row["unit"] == "mg(O2)/L" and row["depth"] == 856.0
    assert row["value"] == pytest.approx(193.39062 * 31.9988 / 1000.0)
    assert _row(table, time=pd.Timestamp("2009-10-23T16:56Z"))["value"] == pytest.approx(
        195.23384 * 31.9988 / 1000.0
    )


def test_latin1_odv_is_detected_and_encoding_can_be_given(tmp_path: Path) -> None:
    text = (REAL / "divand-BlackSea_2profiles.txt").read_text(encoding="utf-8")
    copy = tmp_path / "latin1.txt"
    copy.write_bytes(text.replace("11570900", "Étang-Nord").encode("latin-1"))
    table = insitu.read(copy)
    assert "Étang-Nord" in set(table.data["station_id"])
    assert any("ISO-8859-1" in note for note in table.notes)
    assert "Étang-Nord" in set(insitu.read(copy, encoding="latin-1").data["station_id"])
    with pytest.raises(InSituFormatError, match=r"is not utf-8 text.*encoding="):
        insitu.read(copy, encoding="utf-8")


# -- other files -------------------------------------------------------------------------


def test_erddap_error_body_is_refused() -> None:
    with pytest.raises(InSituFormatError, match="ERDDAP error response"):
        _read("erddap-search-no-results-404.txt")


def test_erddap_nccsv_is_refused_with_the_format_to_ask_for() -> None:
    # The file's first line is `*GLOBAL*,Conventions,"COARDS, CF-1.6, ACDD-1.3, NCCSV-1.1"` and
    # its data follow `*END_METADATA*`: ERDDAP's NCCSV, which neither sniffing nor the ERDDAP CSV
    # reader took for what it is (pandas' "Expected 3 fields in line 37, saw 4" before).
    path = REAL / "erddap-nccsv-sample.csv"
    for reader in (insitu.read, insitu.read_erddap):
        with pytest.raises(InSituFormatError, match=r"ERDDAP NCCSV.*download .* as \.csvp"):
            reader(path)


def test_station_list_is_not_in_situ_data() -> None:
    with pytest.raises(InSituFormatError, match="pass format="):
        _read("grstbx-odatis_stations_s2tiles.csv")


# -- units -------------------------------------------------------------------------------


def test_units_with_a_units_library_and_the_p06_vocabulary() -> None:
    oxygen = PARAMETERS["dissolved_oxygen"]
    assert oxygen.normalise("kg m-3") == ("mg(O2)/L", 1000.0, 0.0)  # 1 kg/m3 = 1 g/L
    assert PARAMETERS["water_temperature"].normalise("Celsius degree") == ("degC", 1.0, 0.0)
    assert PARAMETERS["water_temperature"].normalise("SDN:P06::UPAA") == ("degC", 1.0, 0.0)
    assert PARAMETERS["salinity"].normalise("P.S.U.") == ("1", 1.0, 0.0)
    assert PARAMETERS["silicate"].normalise("millimole/m3") == ("µmol/L", 1.0, 0.0)
    assert PARAMETERS["chlorophyll_a"].normalise("UMMC") == ("µg/L", 1.0, 0.0)
    assert PARAMETERS["water_temperature"].normalise("N") is None
    assert as_udunits("UPOX") == "umol/L" and set(P06_UNITS) >= {"UPAA", "UMMC", "ULAA"}


def test_hand_table_factors_agree_with_the_units_library() -> None:
    checked = 0
    for parameter in PARAMETERS.values():
        if parameter.quantity is None:
            continue
        for spelling, (written, factor, offset) in parameter.units.items():
            scale = convert(spelling, parameter.quantity)
            if scale is not None and written == parameter.unit:
                assert scale == pytest.approx((factor, offset)), (parameter.name, spelling)
                checked += 1
    assert checked > 20


# -- encodings (the file's encoding detected, or given with encoding=) ----------------------

REFERENCE = Path(__file__).parent / "data" / "reference" / "insitu"
ERDDAP_CSVP = REFERENCE / "erddap-gliders-amelia-20180501T0000-temperature.csvp"
SOMLIT_CSV = REFERENCE / "somlit-med-HYDRO-1995-2021.csv"


def _erddap_latin1(tmp_path: Path, suffix: str) -> Path:
    """An ERDDAP response in ISO-8859-1 (what ERDDAP serves .csv/.csvp in) with a station 'Étang'.

    Built from the reference .csvp (header ``temperature (Celsius),time (UTC)``, rows 2-4:
    10.2863, 10.2904, 10.284 at 2018-05-08T00:32:38Z) with the station and position columns an
    ERDDAP query adds, written as ERDDAP writes them: a column without units has no
    ``(units)`` in ``.csvp`` and an empty units cell in ``.csv``.
    """
    lines = ERDDAP_CSVP.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "temperature (Celsius),time (UTC)"
    rows = [line.split(",") for line in lines[1:4]]
    if suffix == ".csvp":
        head = [
            "station,latitude (degrees_north),longitude (degrees_east),temperature (Celsius),time (UTC)"
        ]
    else:
        head = [
            "station,latitude,longitude,temperature,time",
            ",degrees_north,degrees_east,Celsius,UTC",
        ]
    body = [f"Étang de Berre,43.45,5.1,{value},{time}" for value, time in rows]
    path = tmp_path / f"erddap-latin1{suffix}"
    path.write_bytes("\n".join(head + body).encode("latin-1"))
    return path


@pytest.mark.parametrize("suffix", [".csvp", ".csv"])
def test_erddap_latin1_is_detected_and_encoding_can_be_given(tmp_path: Path, suffix: str) -> None:
    path = _erddap_latin1(tmp_path, suffix)
    guessed = insitu.read(path)
    assert sorted(guessed.data["value"]) == [10.284, 10.2863, 10.2904]
    assert set(guessed.data["station_id"]) == {"Étang de Berre"}
    assert set(guessed.data["parameter"]) == {"water_temperature"}
    assert set(guessed.data["time"]) == {pd.Timestamp("2018-05-08T00:32:38Z")}
    assert (guessed.data["lon"].iloc[0], guessed.data["lat"].iloc[0]) == (5.1, 43.45)
    assert any("not UTF-8" in n and "ISO-8859-1" in n for n in guessed.notes)
    given = insitu.read(path, encoding="latin-1")
    assert set(given.data["station_id"]) == {"Étang de Berre"}
    assert not any("ISO-8859-1" in n for n in given.notes)
    with pytest.raises(InSituFormatError, match=r"is not utf-8 text \(byte \d+.*encoding="):
        insitu.read_erddap(path, encoding="utf-8")
    with pytest.raises(InSituFormatError, match=r"'latin-42' is not a known text encoding"):
        insitu.read(path, encoding="latin-42")


def test_somlit_latin1_is_detected_and_encoding_can_be_given(tmp_path: Path) -> None:
    # the reference export's header and first row (Point B, 1995-01-18 08:00, F, T 13.830 q2),
    # with the site renamed to a name with an accent, re-encoded in Latin-1
    header, first = SOMLIT_CSV.read_text(encoding="utf-8").splitlines()[:2]
    assert '"Point B"' in first and '"13.830",2' in first
    path = tmp_path / "somlit-latin1.csv"
    path.write_bytes(f"{header}\n{first.replace('Point B', 'Étang de Thau')}\n".encode("latin-1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
        guessed = insitu.read(path)
        given = insitu.read_somlit(path, encoding="latin-1")
    for table in (guessed, given):
        row = _row(table, parameter="water_temperature")
        assert (row["station_id"], row["value"], row["qc_flag"]) == ("Étang de Thau", 13.83, 1)
    assert any("ISO-8859-1" in n for n in guessed.notes)
    assert not any("ISO-8859-1" in n for n in given.notes)
    with pytest.raises(InSituFormatError, match=r"is not utf-8 text.*encoding="):
        insitu.read(path, encoding="utf-8")


def test_table_csv_latin1_is_detected_and_encoding_can_be_given(tmp_path: Path) -> None:
    path = tmp_path / "tidy-latin1.csv"
    path.write_bytes(
        (
            "station_id,time,lon,lat,depth,parameter,value,unit,qc_flag,source\n"
            "Étang de Thau,2021-06-01T10:00:00Z,3.6,43.4,1.0,turbidity,2.5,FNU,1,ifremer\n"
        ).encode("latin-1")
    )
    for table in (insitu.read(path), insitu.read_table(path, encoding="latin-1")):
        row = _row(table, parameter="turbidity")
        assert (row["station_id"], row["value"], row["time"]) == (
            "Étang de Thau",
            2.5,
            pd.Timestamp("2021-06-01T10:00Z"),
        )
    assert any("ISO-8859-1" in n for n in insitu.read(path).notes)
    with pytest.raises(InSituFormatError, match=r"is not utf-8 text.*encoding="):
        insitu.read(path, format="table", encoding="utf-8")


# -- plausibility ------------------------------------------------------------------------


def test_a_sampling_date_in_the_future_is_flagged_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _copy(tmp_path, "pocean-timeseries-om-single.nc")
    start = pd.Timestamp("1990-01-01")
    with netCDF4.Dataset(copy, "a") as ds:  # int32 seconds end in 2058: hourly times in minutes
        assert ds["time"].units == "seconds since 1990-01-01 00:00:00"
        ds["time"].units = "minutes since 1990-01-01 00:00:00"
        ds["time"][:] = ds["time"][:] // 60
        ds["time"][2] = (pd.Timestamp("2099-06-01") - start) // pd.Timedelta("1min")  # row 3
        ds["time"][3] = (pd.Timestamp("2005-06-01") - start) // pd.Timedelta("1min")  # row 4
        ds["alt"][...] = -6.0  # 6 m below the surface (the file's +6 m up is flagged bad)
    mapping = {"temperature": "water_temperature"}
    table = insitu.read(copy, variables=mapping)
    assert len(table.data) == 100
    assert _row(table, time=pd.Timestamp("2099-06-01T00:00Z"))["qc_flag"] == 4
    assert _row(table, time=pd.Timestamp("2005-06-01T00:00Z"))["qc_flag"] == 0
    future = table.flagged[table.flagged["reason"].str.contains("in the future")]
    assert len(future) == 1 and "2099-06-01" in future["reason"].iloc[0]
    # the present is injectable: as seen from 2000, the 2005 sample is in the future too
    monkeypatch.setattr("recipes.insitu._core.now", lambda: pd.Timestamp("2000-01-01", tz="UTC"))
    past = insitu.read(copy, variables=mapping)
    assert _row(past, time=pd.Timestamp("2005-06-01T00:00Z"))["qc_flag"] == 4
    assert past.flagged["reason"].str.contains("in the future").sum() == 2
    assert _row(past, time=pd.Timestamp("1990-01-01T00:00Z"))["qc_flag"] == 0


def test_every_parameter_documents_its_plausible_range() -> None:
    doc = insitu.__doc__ or ""
    section = doc.split("Plausible ranges\n----------------\n", 1)[1].split("\n\n")
    table = next(block for block in section if block.startswith("===="))
    documented: dict[str, tuple[tuple[float, float], str | None]] = {}
    for line in table.splitlines()[3:-1]:
        name, text = line.split(maxsplit=1)
        found = re.match(r"^\[(?P<low>[-\d.]+), (?P<high>[-\d.]+)\] (?P<unit>.+)$", text)
        if found is None:
            assert text.startswith("none"), line
            documented[name] = ((-np.inf, np.inf), None)
        else:
            documented[name] = ((float(found["low"]), float(found["high"])), found["unit"])
    assert sorted(documented) == sorted(PARAMETERS)
    for name, (bounds, unit) in documented.items():
        assert bounds == PARAMETERS[name].valid_range, name
        if unit is not None:
            assert PARAMETERS[name].unit in unit, name
    assert documented["water_temperature"] == ((-3.0, 45.0), "degC")


# -- netCDF-4 with an offset in the time units --------------------------------------------


def test_netcdf4_time_units_with_an_offset(tmp_path: Path) -> None:
    """The real timeSeries file rewritten as netCDF-4, time in days since 1858-11-17 +0:00."""
    original = REAL / "pocean-timeseries-om-single.nc"
    copy = tmp_path / "mjd.nc"
    mjd_1990 = (pd.Timestamp("1990-01-01") - pd.Timestamp("1858-11-17")).days
    assert mjd_1990 == 47892
    with netCDF4.Dataset(original) as src, netCDF4.Dataset(copy, "w", format="NETCDF4") as dst:
        dst.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
        for name, dim in src.dimensions.items():
            dst.createDimension(name, None if dim.isunlimited() else len(dim))
        for name, var in src.variables.items():
            attrs = {k: var.getncattr(k) for k in var.ncattrs()}
            if name == "time":
                out = dst.createVariable(name, "f8", var.dimensions)
                attrs.update(units="days since 1858-11-17 00:00:00 +0:00", missing_value=-999.0)
                out.setncatts(attrs)
                out[:] = mjd_1990 + var[:].astype("f8") / 86400.0
            else:
                out = dst.createVariable(name, var.dtype, var.dimensions)
                out.setncatts(attrs)
                out[...] = var[...]
    with netCDF4.Dataset(copy) as ds:
        assert ds.data_model == "NETCDF4" and ds["time"][1] == pytest.approx(47892 + 1 / 24)
    mapping = {"temperature": "water_temperature"}
    table = insitu.read(copy, variables=mapping)
    reference = insitu.read(original, variables=mapping)
    assert len(table.data) == len(reference.data) == 100
    assert table.data["time"].iloc[0] == pd.Timestamp("1990-01-01T00:00Z")
    assert _row(table, time=pd.Timestamp("1990-01-01T01:00Z"))["value"] == pytest.approx(
        _row(reference, time=pd.Timestamp("1990-01-01T01:00Z"))["value"]
    )
    shift = (table.data["time"] - reference.data["time"]).abs().max()
    assert shift < pd.Timedelta("1ms")
    assert list(table.data["value"]) == list(reference.data["value"])
