"""Every bad input gets a clear error of the project's tree, checked up front (issue 14).

For each bad input: an error deriving from ``lab.EarthLabError`` whose message names the
field (its path in the file) and says what to do, no Python-internal text (``unhashable
type``, ``'int' object has no attribute``, ...), and nothing left half-written. On the command
line: argparse's one-line message and exit status 2 (``earthlab cube list`` on a missing
folder too: the folder is a bad argument), never a traceback.

The last part covers inputs owned by the loader and the in-situ readers (``datacubes.load``,
``recipes.insitu.read``): public behaviour only.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import yaml
from affine import Affine

import datacubes
import lab
from lab._centres import read_centres_file
from lab._cli import main
from recipes import insitu

SAMPLE_SPEC = "thau-lagoon-sample"

INTERNAL_TEXT = (
    "unhashable type",
    "object has no attribute",
    "object is not",
    "NoneType",
    "__init__()",
    "got an unexpected keyword argument",
    "Traceback",
    "invalid literal for int()",
    "could not convert string to float",
)


def assert_clear(message: str) -> None:
    """No Python-internal text in a message meant for users."""
    for text in INTERNAL_TEXT:
        assert text not in message, f"Python-internal text {text!r} in: {message}"


# --- centres files ---------------------------------------------------------------------------

CATALOG = "    catalog: {kind: stac-api, href: 'http://127.0.0.1:1/stac'}\n"
CENTRE = "version: 1\ncentres:\n  - name: theia\n" + CATALOG


def _with(catalog: str = "", extra: str = "") -> str:
    """A one-centre file with extra catalogue fields and extra centre lines."""
    line = "    catalog: {kind: stac-api, href: 'http://127.0.0.1:1/stac'" + catalog + "}\n"
    return "version: 1\ncentres:\n  - name: theia\n" + line + extra


CENTRES_CASES = [
    # (id, file text, fragment of the message, with the field's path)
    ("href-number", _with().replace("'http://127.0.0.1:1/stac'", "42"),
     r"centre 'theia': catalog\.href: expected a URL or path, got 42 \(int\)"),
    ("href-empty", _with().replace("'http://127.0.0.1:1/stac'", "''"),
     r"catalog\.href: expected a URL or path"),
    ("kind-unknown", _with().replace("stac-api", "ftp"),
     r"catalog\.kind 'ftp' is not supported; use one of"),
    ("kind-list", _with().replace("kind: stac-api", "kind: [stac-api]"),
     r"catalog\.kind: expected text, got \['stac-api'\] \(list\)"),
    ("timeout-text", _with(", timeout: fast"), r"catalog\.timeout: expected a number"),
    ("timeout-nan", _with(", timeout: .nan"), r"catalog\.timeout: expected a number, got nan"),
    ("timeout-zero", _with(", timeout: 0"), r"catalog\.timeout must be > 0 seconds"),
    ("retries-float", _with(", retries: 1.5"), r"catalog\.retries: expected an integer, got 1\.5"),
    ("retries-negative", _with(", retries: -1"), r"catalog\.retries must be an integer 0\.\.10"),
    ("headers-list", _with(", headers: [a]"), r"catalog\.headers: expected a mapping of text"),
    ("catalog-unknown-field", _with(", colour: red"), r"catalog: unknown field\(s\) colour"),
    ("catalog-missing", "centres:\n  - name: theia\n", r"centre 'theia': field 'catalog' is"),
    ("catalog-list", "centres:\n  - name: theia\n    catalog: [a]\n",
     r"catalog: expected a mapping, got \['a'\] \(list\)"),
    ("priority-float", _with(extra="    priority: 1.9\n"),
     r"priority: expected an integer, got 1\.9 \(float\)"),
    ("priority-text", _with(extra="    priority: high\n"), r"priority: expected an integer"),
    ("priority-bool", _with(extra="    priority: true\n"), r"priority: expected an integer"),
    ("collections-text", _with(extra="    collections: s2\n"), r"collections: expected a list"),
    ("collections-numbers", _with(extra="    collections: [1, 2]\n"),
     r"collections: expected a list of text"),
    ("restricted-list", _with(extra="    restricted: [a]\n"), r"restricted: expected a mapping"),
    ("restricted-number-group", _with(extra="    restricted: {s2: 1}\n"),
     r"restricted: expected a mapping of text to text"),
    ("title-number", _with(extra="    title: 2024\n"),
     r"title: expected text, got 2024 \(int\) \(quote it in the YAML\)"),
    ("static-catalog-number", _with(extra="    static_catalog: 3\n"),
     r"static_catalog: expected a URL or path, got 3"),
    ("access-url-not-http", _with(extra="    access_url: ftp://x\n"),
     r"access_url: expected an http\(s\) URL"),
    ("gateway-text", _with(extra="    gateway: http://127.0.0.1:8000\n"),
     r"gateway: expected a mapping"),
    ("gateway-address-number", _with(extra="    gateway: {address: 8000}\n"),
     r"gateway\.address: expected an http\(s\) URL, got 8000"),
    ("gateway-auth-unknown", _with(extra="    gateway: {address: 'http://h', auth: magic}\n"),
     r"gateway\.auth 'magic' is not supported"),
    ("storage-url-missing", _with(extra="    storage: {region: eu}\n"),
     r"storage\.url: is required"),
    ("storage-url-number", _with(extra="    storage: {url: 5}\n"),
     r"storage\.url: expected a URL or path, got 5"),
    ("centre-unknown-field", _with(extra="    colour: red\n"),
     r"centre 'theia': unknown field\(s\) colour; known:"),
    ("name-number", "centres:\n  - name: 5\n" + CATALOG, r"centres\[0\]\.name: expected text"),
    ("name-invalid", "centres:\n  - name: Bad_Name\n" + CATALOG, r"use lower-case letters"),
    ("name-missing", "centres:\n  - title: T\n" + CATALOG, r"centres\[0\]\.name: is required"),
    ("entry-text", "centres:\n  - theia\n", r"centres\[0\]: expected a mapping, got str"),
    ("centres-mapping", "centres: {theia: 1}\n", r"'centres' must be a list of centres"),
    ("centres-empty", "centres: []\n", r"lists no centre; add at least one"),
    ("duplicate-centre-name", CENTRE + "  - name: theia\n" + CATALOG,
     r"centre names must be unique; repeated: theia"),
    ("duplicate-key-name", CENTRE.replace("  - name: theia\n", "  - name: theia\n    name: odatis\n"),
     r"centres\[0\]\.name: the key 'name' is given twice \(lines 3 and 4\); keep one"),
    ("duplicate-key-nested", _with(", href: 'http://127.0.0.1:2/stac'"),
     r"centres\[0\]\.catalog\.href: the key 'href' is given twice"),
    ("duplicate-key-top", CENTRE + "version: 1\n", r"version: the key 'version' is given twice"),
    ("key-not-text", CENTRE + "    ? [a]\n    : 1\n", r"centres\[0\]: a key must be text"),
    ("top-unknown-field", CENTRE + "colour: red\n", r"unknown field\(s\) colour at the top level"),
    ("version-unsupported", CENTRE.replace("version: 1", "version: 9"), r"version 9 is not"),
    ("version-bool", CENTRE.replace("version: 1", "version: true"), r"version True is not"),
    ("not-yaml", "centres: [unclosed\n", r"is not valid YAML"),
    ("not-a-mapping", "- a\n- b\n", r"expected a mapping with 'version' and 'centres'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [pytest.param(text, message, id=name) for name, text, message in CENTRES_CASES],
)
def test_bad_centres_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "centres.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(lab.CentresFileError, match=message) as info:
        read_centres_file(path)
    assert str(info.value).startswith(f"centres file {path}")  # the file is named
    assert_clear(str(info.value))


def test_centres_file_behind_a_closed_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a centres file in a directory closed to this account: a CentresFileError.

    Root passes every permission check, so the refusal the kernel gives other accounts
    (``stat`` failing with EACCES) is what ``Path.is_file`` raises here.
    """
    closed = tmp_path / "private" / "centres.yaml"
    real_is_file = Path.is_file

    def is_file(self: Path) -> bool:
        if self == closed:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    with pytest.raises(lab.CentresFileError, match=r"cannot be reached \(Permission denied\)"):
        read_centres_file(closed)


def test_centres_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(lab.CentresFileError, match="does not exist; create one"):
        read_centres_file(tmp_path)


def test_acceptable_centres_file_reads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "centres.yaml"
    path.write_text(_with(", timeout: 5, retries: 0", "    priority: 3\n"), encoding="utf-8")
    centre = read_centres_file(path)["theia"]
    assert (centre.priority, centre.catalog.timeout, centre.catalog.retries) == (3, 5, 0)


# --- cube specs ------------------------------------------------------------------------------


@pytest.fixture()
def spec_doc() -> dict[str, Any]:
    return yaml.safe_load(datacubes.shipped_specs()[SAMPLE_SPEC].read_text(encoding="utf-8"))


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DROP:
        node.pop(last, None)
    else:
        node[last] = value
    return out


_DROP = object()

SPEC_CASES = [
    ("grid.resolution", -20, r"grid\.resolution: must be a positive number"),
    ("grid.resolution", 0, r"grid\.resolution: must be a positive number"),
    ("grid.resolution", float("nan"), r"grid\.resolution: must be a positive number"),
    ("grid.resolution", float("inf"), r"grid\.resolution: must be a positive number"),
    ("grid.resolution", "20m", r"grid\.resolution: must be a positive number"),
    ("grid.bounds", [557800, 4796860, 541800, 4812860], r"grid\.bounds: must be \(xmin"),
    ("grid.bounds", [541800, 4812860, 557800, 4796860], r"grid\.bounds: must be \(xmin"),
    ("grid.bounds", [541800, float("nan"), 557800, 4812860], r"grid\.bounds: must be four finite"),
    ("grid.bounds", [541800, 4796860, float("inf"), 4812860], r"grid\.bounds: must be four finite"),
    ("grid.bounds", [541800, 4796860, 557800], r"grid\.bounds: must be four finite numbers"),
    ("grid.bounds", [541801, 4796860, 557800, 4812860], r"grid\.bounds: 541801 is not a multiple"),
    ("grid.crs", "EPSG:0", r"grid\.crs: 'EPSG:0' is not a valid CRS"),
    ("target.chunks", {"time": 0, "y": 400, "x": 400}, r"target\.chunks\.time: must be a positive"),
    ("target.chunks", {"time": 4, "y": -1, "x": 400}, r"target\.chunks\.y: must be a positive"),
    ("target.chunks", {"time": 4, "y": 400, "x": 1.5}, r"target\.chunks\.x: must be a positive"),
    ("target.chunks", {"time": 4, "y": 400}, r"target\.chunks: give sizes for time, y and x"),
    ("target.shards", {"time": 4, "y": 600, "x": 800}, r"target\.shards: y \(600\) must be a mult"),
    ("target.url", "cube.nc", r"target\.url: 'cube\.nc' must end with \.zarr"),
    ("target.zarr_format", 4, r"target\.zarr_format: must be 2 or 3"),
    ("source.bbox", [3.8, 43.3, 3.5, 43.5], r"source\.bbox: .*west > east"),
    ("source.datetime", "last year", r"source\.datetime: .*not RFC 3339"),
    ("source.max_cloud_cover", 120, r"source\.max_cloud_cover: must be a percentage"),
    ("source.collections", _DROP, r"source\.collections: is required"),
    ("source.colour", "red", r"source\.colour: unknown field"),
    ("encoding.dtype", "int16", r"encoding\.scale_factor: is required with dtype int16"),
    ("bands", [], r"bands: must be a non-empty list"),
    ("cloud_mask", [12], r"cloud_mask: classes must be Sentinel-2 SCL values 0\.\.11"),
    ("composite.period", "fortnight", r"composite\.period: must be day, week"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [pytest.param(f, v, m, id=f"{f}={v!r}") for f, v, m in SPEC_CASES],
)
def test_bad_spec_field(spec_doc: dict[str, Any], field: str, value: Any, message: str) -> None:
    with pytest.raises(datacubes.SpecError, match=message) as info:
        datacubes.read_spec(_set(spec_doc, field, value))
    assert isinstance(info.value, lab.EarthLabError)
    assert_clear(str(info.value))


def test_duplicate_key_in_spec_file_is_not_silently_kept(tmp_path: Path) -> None:
    text = datacubes.shipped_specs()[SAMPLE_SPEC].read_text(encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(text.replace("  resolution: 20\n", "  resolution: 20\n  resolution: 10\n"))
    with pytest.raises(datacubes.SpecError, match=r"grid\.resolution: the key .* given twice"):
        datacubes.read_spec(path)


# --- builds: refused before anything is written ----------------------------------------------


@pytest.fixture()
def target(tmp_path: Path) -> Path:
    return tmp_path / "out" / "cube.zarr"


def _refused(spec: Any, target: Path, message: str, **kwargs: Any) -> lab.EarthLabError:
    with pytest.raises(lab.EarthLabError, match=message) as info:
        datacubes.build(spec, target=str(target), **kwargs)
    assert_clear(str(info.value))
    assert not target.exists() and not target.with_suffix(".meta").exists()
    return info.value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, r"workers must be an integer >= 1"),
        ({"workers": -1}, r"workers must be an integer >= 1"),
        ({"workers": 1.5}, r"workers must be an integer >= 1"),
        ({"retries": -1}, r"retries must be an integer >= 0"),
        ({"retries": True}, r"retries must be an integer >= 0"),
    ],
    ids=["workers=0", "workers=-1", "workers=1.5", "retries=-1", "retries=True"],
)
def test_build_refuses_bad_numbers(target: Path, kwargs: dict[str, Any], message: str) -> None:
    _refused(SAMPLE_SPEC, target, message, **kwargs)


def test_build_refuses_a_target_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "cube.zarr"
    with pytest.raises(datacubes.SpecError, match=r"target: cannot create .* is a file"):
        datacubes.build(SAMPLE_SPEC, target=str(target))
    assert (tmp_path / "afile").read_text() == "x"


def test_build_refuses_a_target_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "cube.zarr").write_text("x")
    with pytest.raises(datacubes.SpecError, match=r"exists and is not a directory"):
        datacubes.build(SAMPLE_SPEC, target=str(tmp_path / "cube.zarr"))
    assert (tmp_path / "cube.zarr").read_text() == "x"


def test_build_refuses_a_target_that_is_not_zarr(tmp_path: Path) -> None:
    with pytest.raises(lab.ConfigurationError, match=r"must end with \.zarr"):
        datacubes.build(SAMPLE_SPEC, target=str(tmp_path / "cube.nc"))
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_a_resolution_with_too_many_regions(spec_doc, target) -> None:
    spec = _set(spec_doc, "grid.resolution", 0.01)  # 1.6 million pixels a side
    error = _refused(spec, target, r"1600000 x 1600000 pixels .*regions")
    assert "coarser grid.resolution" in str(error)


def test_build_refuses_regions_larger_than_memory(spec_doc, target, monkeypatch) -> None:
    monkeypatch.setattr("datacubes._resources.available_memory", lambda: 2 * 10**9)
    spec = _set(spec_doc, "target.shards", {"time": 64, "y": 800, "x": 800})
    error = _refused(spec, target, r"needs about .* GB of memory, more than 50% of the 2\.0 GB")
    assert "smaller target.chunks / target.shards" in str(error)


def test_build_refuses_a_cube_larger_than_the_disk(spec_doc, target, monkeypatch) -> None:
    import shutil

    real = shutil.disk_usage

    def small_disk(path: str) -> Any:
        return real(path)._replace(free=10**6)

    monkeypatch.setattr("datacubes._resources.shutil.disk_usage", small_disk)
    error = _refused(spec_doc, target, r"of values \(uncompressed\), more than the 1\.0 MB free")
    assert "coarser grid.resolution" in str(error)


def test_refused_overwrite_leaves_the_old_target(spec_doc, tmp_path: Path) -> None:
    target = tmp_path / "cube.zarr"
    target.mkdir()
    (target / "keep").write_text("old")
    spec = _set(spec_doc, "grid.resolution", 0.01)
    with pytest.raises(datacubes.SpecError, match="regions"):
        datacubes.build(spec, target=str(target), overwrite=True)
    assert (target / "keep").read_text() == "old"


def test_free_space_is_not_checked_on_s3_and_says_so(spec_doc) -> None:
    from datacubes._resources import check_resources, estimate

    spec = datacubes.read_spec(spec_doc)
    notes = check_resources(spec, estimate(spec, (800, 800), 16), "s3://bucket/c.zarr", 1)
    assert notes and "free space not checked on s3://" in notes[0]


# --- command line: argparse's message and exit status 2 --------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


CLI_CASES = [
    (["search", "--bbox", "a,b,c,d"], r"argument --bbox: 'a,b,c,d' is not four numbers"),
    (["search", "--bbox", "1,2,3"], r"argument --bbox: bbox must be four numbers"),
    (["search", "--bbox", "3.8,43.3,3.5,43.5"], r"argument --bbox: .*west > east"),
    (["search", "--bbox", "3.5,43.5,3.8,43.3"], r"argument --bbox: .*south > north"),
    (["search", "--bbox", "3.5,43.3,3.5,43.5"], r"argument --bbox: bbox .* is empty"),
    (["search", "--bbox", "3.5,43.3,200,43.5"], r"argument --bbox: .*outside WGS84"),
    (["search", "--bbox", "nan,43.3,3.8,43.5"], r"argument --bbox: .*outside WGS84"),
    (["search", "--datetime", "yesterday"], r"argument --datetime/-d: .*not RFC 3339"),
    (["search", "--datetime", "2022-03/2022-01"], r"argument --datetime/-d: .*ends before"),
    (["search", "--datetime", "2022-13"], r"argument --datetime/-d: .*not a valid date"),
    (["search", "--max-items", "0"], r"argument --max-items/-n: must be an integer >= 1"),
    (["search", "--max-items", "-3"], r"argument --max-items/-n: must be an integer >= 1"),
    (["search", "--max-items", "ten"], r"argument --max-items/-n: must be an integer, got"),
    (["search", "--timeout", "-1"], r"argument --timeout: must be a finite number > 0"),
    (["search", "--timeout", "inf"], r"argument --timeout: must be a finite number > 0"),
    (["search", "--limit", "5"], r"argument --limit: .*Use --max-items 5"),
    (["cube", "build", SAMPLE_SPEC, "--workers", "0"], r"argument --workers: must be an intege"),
    (["cube", "build", SAMPLE_SPEC, "--workers", "-1"], r"argument --workers: must be an intege"),
    (["cube", "build", SAMPLE_SPEC, "--retries", "-1"], r"argument --retries: must be an intege"),
    (["cube", "list", "/nonexistent/cubes"], r"argument store: /nonexistent/cubes does not exist"),
    (["sample", "--out", "x", "--dates", "3"], r"argument --dates: must be an integer from 16"),
    (["sample", "--out", "x", "--dates", "500"], r"argument --dates: must be an integer from 16"),
    (["sample", "--out", "x", "--seed", "-1"], r"argument --seed: must be an integer >= 0"),
    (["demo", "--window", "0"], r"argument --window: must be an integer from 3 to 11"),
    (["demo", "--window", "4"], r"argument --window: window must be an odd number"),
    (["demo", "--max-dt", "soon"], r"argument --max-dt: max_dt 'soon' is not a duration"),
]


@pytest.mark.parametrize(
    ("argv", "message"), [pytest.param(a, m, id=" ".join(a)) for a, m in CLI_CASES]
)
def test_bad_cli_argument(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, even relative to the working directory
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert re.search(message, err), err
    assert_clear(err)
    assert list(tmp_path.iterdir()) == []


def test_cli_cube_list_on_a_file_is_exit_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    code, err = run_cli(["cube", "list", str(tmp_path / "afile")], capsys)
    assert code == 2 and "is not a directory" in err


def test_cli_cube_list_on_an_empty_folder_lists_nothing(tmp_path: Path, capsys) -> None:
    assert main(["cube", "list", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["name", "status", "steps", "start", "end", "url"]


def test_cli_bad_centres_file_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "centres.yaml"
    path.write_text(_with(extra="    priority: 1.9\n"))
    code, err = run_cli(["search", "--centres", str(path)], capsys)
    assert code == 1
    assert (
        err.startswith("earthlab: error: centres file") and "priority: expected an integer" in err
    )
    assert len(err.strip().splitlines()) == 1


# --- STAC items passed to datacubes.load, their rasters, in-situ files ------------------------
#
# Public behaviour only (``datacubes.load``, ``recipes.insitu.read``). Each bad input gets an
# error of the project's tree naming the cause or what to do, or, where the input is
# acceptable, the correct result; neither writes anything.

GRID = Affine(10.0, 0, 300000.0, 0, -10.0, 4800000.0)  # 10 m pixels, UTM 31N


def _tif(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = "EPSG:32631",
    transform: Affine = GRID,
    nodata: float | None = None,
    driver: str = "GTiff",
) -> str:
    profile: dict[str, Any] = {
        "driver": driver,
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": data.dtype.name,
        "transform": transform,
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def _good(tmp: Path, name: str = "red.tif") -> str:
    return _tif(tmp / name, np.arange(64, dtype="uint16").reshape(8, 8))


def _stac(
    href: str,
    *,
    item_id: str = "bad-item",
    epsg: int | None = 32631,
    shape: tuple[int, int] = (8, 8),
    transform: Affine = GRID,
    asset: dict[str, Any] | None = None,
) -> pystac.Item:
    """A one-asset item (key ``red``) with its grid in the item's properties."""
    props: dict[str, Any] = {"proj:shape": list(shape), "proj:transform": list(transform)[:6]}
    if epsg is not None:
        props["proj:epsg"] = epsg
    when = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    item = pystac.Item(item_id, None, [3.0, 43.0, 3.1, 43.1], when, props)
    item.add_asset("red", pystac.Asset(href, roles=["data"], extra_fields=asset or {}))
    return item


def _without(item: pystac.Item, *keys: str) -> pystac.Item:
    for key in keys:
        item.properties.pop(key, None)
    if "datetime" in keys:
        item.datetime = None
    return item


def _bare(item: pystac.Item) -> pystac.Item:
    item.assets.clear()
    return item


def _load_all(items: Any, bands: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lab.EarthLabWarning)  # "loaded as raw numbers"
        return datacubes.load(items, bands, **kwargs).compute()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def url_404() -> Iterator[str]:
    """A loopback server answering 404 to everything."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/red.tif"
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


def _two_crs(t: Path) -> list[pystac.Item]:
    east = Affine(10.0, 0, 700000.0, 0, -10.0, 4800000.0)
    other = _tif(t / "b.tif", np.ones((8, 8), "uint16"), crs="EPSG:32632", transform=east)
    return [_stac(_good(t)), _stac(other, item_id="b", epsg=32632, transform=east)]


def _truncated(t: Path) -> str:
    data = np.random.default_rng(0).integers(0, 9000, (256, 256)).astype("uint16")
    whole = Path(_tif(t / "whole.tif", data)).read_bytes()
    (t / "whole.tif").unlink()
    (t / "cut.tif").write_bytes(whole[: len(whole) // 3])
    return str(t / "cut.tif")


def _png_as_tif(t: Path) -> str:
    png = Path(_tif(t / "x.png", np.ones((8, 8), "uint8"), crs=None, driver="PNG"))
    (t / "png.tif").write_bytes(png.read_bytes())
    for path in t.glob("x.png*"):
        path.unlink()
    return str(t / "png.tif")


def _zero_bytes(t: Path) -> str:
    (t / "zero.tif").write_bytes(b"")
    return str(t / "zero.tif")


Case = Callable[[Path, str], tuple[Any, Any, dict[str, Any]]]


def _nodata(value: Any, data_type: str = "uint16") -> Case:
    return lambda t, u: (
        [_stac(_good(t), asset={"raster:bands": [{"data_type": data_type, "nodata": value}]})],
        ["red"],
        {},
    )


def _two_items_one_file(t: Path, u: str) -> tuple[Any, Any, dict[str, Any]]:
    """Two items of one load naming one file, the second with a contradicting proj:shape."""
    href = _good(t)
    return (
        [_stac(href, item_id="first"), _stac(href, item_id="second", shape=(16, 16))],
        ["red"],
        {"groupby": "id"},
    )


def _recheck(t: Path, u: str) -> tuple[Any, Any, dict[str, Any]]:
    """A file read once, then named by an item whose proj:shape contradicts it."""
    href = _good(t)
    _load_all([_stac(href, item_id="first")], ["red"])
    return [_stac(href, shape=(16, 16))], ["red"], {}


# (id, builder(tmp folder, 404 URL) -> (items, bands, load options), error, message fragment)
LOAD_CASES: list[Any] = [
    # STAC items
    ("item-without-assets", lambda t, u: ([_bare(_stac(_good(t)))], ["red"], {}),
     datacubes.BandNotFoundError, r"band 'red' not found in item 'bad-item'.*Ask for one of"),
    ("href-missing", lambda t, u: ([_stac(str(t / "gone.tif"))], ["red"], {}),
     lab.AssetReadError, r"asset 'red': file .*gone\.tif does not exist.*fail_on_error=False"),
    ("href-404", lambda t, u: ([_stac(u)], ["red"], {}),
     lab.AssetReadError, r"item 'bad-item' asset 'red' at http://127\.0\.0\.1:\d+/red\.tif: .*404"),
    ("href-empty", lambda t, u: ([_stac("")], ["red"], {}),
     lab.ConfigurationError, r"relative href ''.*make hrefs absolute"),
    ("no-epsg-wkt2-code", lambda t, u: ([_stac(_good(t), epsg=None)], ["red"], {}),
     lab.ConfigurationError, r"no proj:code / proj:epsg\): pass crs= and resolution="),
    ("proj-shape-contradicts-file", lambda t, u: ([_stac(_good(t), shape=(16, 16))], ["red"], {}),
     datacubes.AssetMetadataError, r"proj:shape says \[16, 16\].*the file has \[8, 8\]"),
    ("proj-transform-zero-pixel",
     lambda t, u: ([_stac(_good(t), transform=Affine(0, 0, 3e5, 0, -10, 4.8e6))], ["red"], {}),
     lab.ConfigurationError, r"pixel size.*pass resolution="),
    ("bbox-outside-every-item", lambda t, u: ([_stac(_good(t))], ["red"], {"bbox": (-60, -10, -59.9, -9.9)}),
     datacubes.EmptyLoadError, r"outside every item.*Give a bbox inside the items"),
    ("bands-naming-nothing", lambda t, u: ([_stac(_good(t))], ["chlorophyll"], {}),
     datacubes.BandNotFoundError, r"band 'chlorophyll' not found.*All asset keys: red"),
    ("bands-empty-list", lambda t, u: ([_stac(_good(t))], [], {}),
     lab.ConfigurationError, r"bands must be a band name or a list of band names"),
    ("bands-empty-text", lambda t, u: ([_stac(_good(t))], "", {}),
     lab.ConfigurationError, r"bands must be a band name or a list of band names"),
    ("mask-clouds-without-scl", lambda t, u: ([_stac(_good(t))], ["red"], {"mask": "clouds"}),
     datacubes.BandNotFoundError, r"mask='clouds' needs band 'scl'.*or pass mask=None"),
    ("datetime-missing", lambda t, u: ([_without(_stac(_good(t)), "datetime")], ["red"], {}),
     lab.ConfigurationError, r"item 'bad-item' has neither datetime nor start_datetime"),
    ("two-crs-without-crs", lambda t, u: (_two_crs(t), ["red"], {}),
     lab.ConfigurationError, r"several CRSs \(EPSG:32631, EPSG:32632\): pass crs="),
    ("resolution-negative", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": -10}),
     lab.ConfigurationError, r"resolution must be a positive number, got -10"),
    ("resolution-zero", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": 0}),
     lab.ConfigurationError, r"resolution must be a positive number, got 0"),
    ("resolution-text", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": "10"}),
     lab.ConfigurationError, r"resolution must be a positive number, got '10'"),
    ("resolution-nan", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": float("nan")}),
     lab.ConfigurationError, r"resolution must be a positive number, got nan: give the pixel"),
    ("resolution-inf", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": float("inf")}),
     lab.ConfigurationError, r"resolution must be a positive number, got inf"),
    ("resolution-numpy-nan", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": np.float32("nan")}),
     lab.ConfigurationError, r"resolution must be a positive number, got .*nan"),
    ("resolution-pair-nan", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": (10, float("nan"))}),
     lab.ConfigurationError, r"resolution must be a positive number, got \(10, nan\).*\(x, y\) pair"),
    ("resolution-pair-negative", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": (-10, 10)}),
     lab.ConfigurationError, r"resolution must be a positive number, got \(-10, 10\)"),
    ("resolution-pair-zero", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": [10, 0]}),
     lab.ConfigurationError, r"resolution must be a positive number, got \[10, 0\]"),
    ("resolution-pair-inf", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": (float("inf"), 10)}),
     lab.ConfigurationError, r"resolution must be a positive number, got \(inf, 10\)"),
    ("resolution-triple", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": (10, 10, 10)}),
     lab.ConfigurationError, r"resolution must be a positive number, got \(10, 10, 10\)"),
    ("resolution-bool", lambda t, u: ([_stac(_good(t))], ["red"], {"resolution": True}),
     lab.ConfigurationError, r"resolution must be a positive number, got True"),
    ("chunks-x-zero", lambda t, u: ([_stac(_good(t))], ["red"], {"chunks": {"x": 0}}),
     lab.ConfigurationError, r"chunks\['x'\] must be a positive int, -1 or 'auto'"),
    ("chunks-unknown-dim", lambda t, u: ([_stac(_good(t))], ["red"], {"chunks": {"band": 2}}),
     lab.ConfigurationError, r"chunks has unknown dimensions \['band'\]; use time, y and x"),
    ("items-empty", lambda t, u: ([], ["red"], {}),
     lab.NoItemsError, r"no STAC item to load"),
    ("duplicate-item-ids", lambda t, u: ([_stac(_good(t)), _stac(_good(t))], ["red"], {}),
     lab.ConfigurationError, r"items are repeated: bad-item; pass each once"),
    ("non-item-dict", lambda t, u: ([_stac(_good(t)), {"id": "x"}], ["red"], {}),
     lab.ConfigurationError, r"got dict; convert dictionaries with pystac\.Item\.from_dict"),
    ("non-item-url", lambda t, u: (["http://127.0.0.1:1/item.json"], ["red"], {}),
     lab.ConfigurationError, r"items must be pystac\.Item objects, got str"),
    # rasters referenced by a synthetic item
    ("geotiff-without-crs",
     lambda t, u: ([_stac(_tif(t / "a.tif", np.ones((8, 8), "uint16"), crs=None))], ["red"], {}),
     datacubes.AssetMetadataError, r"the file has no CRS.*rio edit-info --crs"),
    ("zero-byte-file", lambda t, u: ([_stac(_zero_bytes(t))], ["red"], {}),
     lab.AssetReadError, r"zero\.tif: .*not recognized as being in a supported file format"),
    ("truncated-tiff", lambda t, u: ([_stac(_truncated(t), shape=(256, 256))], ["red"], {}),
     lab.AssetReadError, r"could not read item 'bad-item' asset 'red' at .*cut\.tif"),
    ("png-renamed-tif", lambda t, u: ([_stac(_png_as_tif(t))], ["red"], {}),
     datacubes.AssetMetadataError, r"png\.tif\): the file has no CRS"),
    ("float32-behind-uint16",
     lambda t, u: (
         [_stac(_tif(t / "f.tif", np.ones((8, 8), "float32")),
                asset={"raster:bands": [{"data_type": "uint16"}]})], ["red"], {}),
     datacubes.AssetMetadataError, r"says uint16 but the file holds float32"),
    # nodata that no pixel of the declared data type can hold: refused when planning
    ("nodata-below-uint16", _nodata(-9999), datacubes.AssetMetadataError,
     r"item 'bad-item' band 'red' \(asset 'red'\): nodata -9999 cannot occur in uint16 "
     r"pixels \(whole numbers 0\.\.65535\).*Fix the item's nodata or data_type"),
    ("nodata-above-uint16", _nodata(70000), datacubes.AssetMetadataError,
     r"nodata 70000 cannot occur in uint16 pixels"),
    ("nodata-nan-uint16", _nodata("nan"), datacubes.AssetMetadataError,
     r"nodata nan cannot occur in uint16 pixels"),
    ("nodata-fraction-uint16", _nodata(0.5), datacubes.AssetMetadataError,
     r"nodata 0\.5 cannot occur in uint16 pixels"),
    ("nodata-above-int8", _nodata(200, "int8"), datacubes.AssetMetadataError,
     r"nodata 200 cannot occur in int8 pixels \(whole numbers -128\.\.127\)"),
    # a file's header is read once, but every item naming it is compared with it
    ("proj-shape-contradicts-a-file-read-before", _recheck,
     datacubes.AssetMetadataError, r"item 'bad-item' asset 'red'.*proj:shape says \[16, 16\]"),
    ("proj-shape-contradicts-a-file-of-another-item", _two_items_one_file,
     datacubes.AssetMetadataError, r"item 'second' asset 'red'.*proj:shape says \[16, 16\]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("builder", "error", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in LOAD_CASES],
)
def test_bad_load_input(tmp_path: Path, url_404: str, builder: Case, error, message) -> None:
    items, bands, kwargs = builder(tmp_path, url_404)
    before = _files(tmp_path)
    with pytest.raises(error, match=message) as caught:
        _load_all(items, bands, **kwargs)
    assert isinstance(caught.value, lab.EarthLabError)
    assert_clear(str(caught.value))
    assert _files(tmp_path) == before  # nothing written next to the inputs


def test_acceptable_load_inputs_give_the_right_cube(tmp_path: Path) -> None:
    """A start/end range instead of datetime, chunks -1, a file nodata inside the dtype."""
    dn = np.arange(64, dtype="uint16").reshape(8, 8)
    dn[0, 0] = 65535
    href = _tif(tmp_path / "red.tif", dn, nodata=65535)
    ranged = _without(_stac(href), "datetime")
    ranged.properties["start_datetime"] = "2024-05-01T00:00:00Z"
    ranged.properties["end_datetime"] = "2024-05-02T00:00:00Z"
    before = _files(tmp_path)
    ds = _load_all([ranged], ["red"], chunks={"y": -1})
    assert ds.red.shape == (1, 8, 8) and list(ds.source_items.values) == ["bad-item"]
    assert np.isnan(ds.red.values[0, 0, 0])
    np.testing.assert_array_equal(ds.red.values[0].ravel()[1:], np.arange(1, 64))
    assert _files(tmp_path) == before


def test_nodata_outside_the_data_type_is_refused_before_any_read(tmp_path: Path) -> None:
    """Checked when the load is planned: the href points at a server that does not exist."""
    item = _stac("http://127.0.0.1:1/never.tif", asset={
        "raster:bands": [{"data_type": "uint16", "nodata": -9999}]
    })  # fmt: skip
    message = (
        r"item 'bad-item' band 'red' \(asset 'red'\): nodata -9999 cannot occur in uint16 pixels"
    )
    with pytest.raises(datacubes.AssetMetadataError, match=message):
        datacubes.describe_bands([item], ["red"])
    with pytest.raises(datacubes.AssetMetadataError, match=message):
        datacubes.load([item], ["red"])  # lazy: nothing would be read before compute()


def test_resolution_as_an_x_y_pair(tmp_path: Path) -> None:
    """(10, 20): 10 m wide, 20 m tall pixels over the 8 x 8 file of 10 m pixels."""
    ds = _load_all([_stac(_good(tmp_path))], ["red"], resolution=(10, 20))
    assert ds.red.shape == (1, 4, 8)
    assert np.allclose(np.diff(ds.x.values), 10) and np.allclose(np.diff(ds.y.values), -20)
    assert (float(ds.x[0]), float(ds.y[0])) == (300005.0, 4799990.0)  # pixel centres
    values = ds.red.values[0]
    assert np.array_equal(values[:, 0] % 8, np.zeros(4))  # whole rows of the file, first column
    assert list(values[0]) == list(values[0, 0] + np.arange(8))
    square = _load_all([_stac(_good(tmp_path))], ["red"], resolution=(10, 10))
    np.testing.assert_array_equal(square.red.values[0], np.arange(64).reshape(8, 8))


# in-situ files passed to recipes.insitu.read

INSITU_DATA = Path(__file__).parent / "data"
HEADER = "station_id,time,lon,lat,depth,parameter,value,unit,qc_flag,source\n"
ROW = "THAU01,2021-10-03T10:12:00Z,3.5712,43.3921,0.5,turbidity,5.21,FNU,1,test\n"


def _bad_row(old: str, new: str) -> str:
    """The good row, then one with ``old`` replaced by ``new`` (and another value)."""
    return HEADER + ROW + ROW.replace("5.21", "6.0").replace(old, new)


def _half(name: str) -> bytes:
    whole = (INSITU_DATA / "insitu-real" / name).read_bytes()
    return whole[: len(whole) // 2]


def _odv_without_mapping() -> str:
    text = (INSITU_DATA / "insitu" / "odv-profiles-example.txt").read_text()
    lines = text.splitlines()
    kept = [
        line for line in lines if "SDN_parameter_mapping" not in line and "<subject>" not in line
    ]
    assert len(kept) < len(lines)
    return "\n".join(kept) + "\n"


# (id, file name, content, read options, error, message fragment)
INSITU_CASES: list[Any] = [
    ("empty-file", "e.csv", "", {}, insitu.InSituFormatError, r"e\.csv is empty"),
    ("binary-garbage-csv", "g.csv", bytes(range(256)) * 4, {}, insitu.InSituFormatError,
     r"cannot tell the in-situ format of .*g\.csv.*pass format="),
    ("header-only", "h.csv", HEADER, {}, insitu.InSituFormatError,
     r"h\.csv has a header but no data rows"),
    ("no-time-column", "t.csv", HEADER.replace("time,", "") + ROW.replace("2021-10-03T10:12:00Z,", ""),
     {}, insitu.InSituFormatError, r"cannot tell the in-situ format.*pass format="),
    ("no-time-column-as-table", "t.csv",
     HEADER.replace("time,", "") + ROW.replace("2021-10-03T10:12:00Z,", ""), {"format": "table"},
     insitu.InSituFormatError, r"column\(s\) \['time'\] missing"),
    ("netcdf-truncated", "c.nc", _half("pocean-timeseries-om-single.nc"), {},
     insitu.InSituFormatError, r"c\.nc is truncated or corrupt.*Download it again"),
    ("netcdf-header-only", "d.nc", _half("pocean-timeseries-om-single.nc")[:64], {},
     insitu.InSituFormatError, r"cannot open .*d\.nc as netCDF"),
    ("json-not-hubeau", "x.json", json.dumps({"type": "FeatureCollection", "features": []}), {},
     insitu.InSituFormatError, r"x\.json is JSON but not a Hub'Eau response.*pass format="),
    ("json-list", "y.json", "[1, 2, 3]", {},
     insitu.InSituFormatError, r"y\.json is JSON but not a Hub'Eau response"),
    ("latin1-read-as-ascii", "l.csv",
     (HEADER + ROW.replace("turbidity,5.21,FNU", "chlorophyll_a,5.21,µg/L")).encode("latin-1"),
     {"encoding": "ascii"}, insitu.InSituFormatError,
     r"l\.csv is not ascii text.*pass the file's encoding= \(e\.g\. 'latin-1'\)"),
    ("unknown-parameter-asked", "p.csv", HEADER + ROW, {"parameters": "unobtainium"},
     insitu.UnknownParameterError, r"unobtainium"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "options", "error", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in INSITU_CASES],
)
def test_bad_insitu_file(tmp_path: Path, name, content, options, error, message) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(error, match=message) as caught:
        insitu.read(path, **options)
    assert isinstance(caught.value, lab.EarthLabError)
    assert_clear(str(caught.value))
    assert _files(tmp_path) == [name]


# (id, file text, reason of the one rejected row): the good row is read, the bad one rejected
INSITU_ROWS = [
    ("time-unparseable", _bad_row("2021-10-03T10:12:00Z", "03/13/2021 25:99"),
     "time '03/13/2021 25:99' is not an ISO 8601 date-time"),
    ("latitude-95", _bad_row("43.3921", "95"),
     "coordinates outside WGS84 range: lon 3.5712, lat 95.0"),
    ("longitude-400", _bad_row("3.5712", "400"),
     "coordinates outside WGS84 range: lon 400.0, lat 43.3921"),
    ("value-abc", _bad_row("6.0", "abc"), "value 'abc' is not a finite number"),
    ("unit-unknown", _bad_row("FNU", "parsecs"),
     "unit 'parsecs' not understood for turbidity (accepted: FNU, NTU)"),
    ("parameter-unknown", _bad_row("turbidity", "unobtainium"),
     "unknown parameter 'unobtainium' (known ones: insitu.PARAMETERS)"),
    ("station-empty", _bad_row("THAU01", ""), "no station"),
]  # fmt: skip


def _read_quietly(path: Path, **options: Any) -> insitu.InSituTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lab.EarthLabWarning)
        return insitu.read(path, **options)


@pytest.mark.parametrize(("text", "reason"), [pytest.param(*c[1:], id=c[0]) for c in INSITU_ROWS])
def test_bad_insitu_row_is_rejected_with_its_reason(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "rows.csv").write_text(text)
    table = _read_quietly(tmp_path / "rows.csv")
    assert list(table.rejected["reason"]) == [reason]
    assert list(table.rejected["row"]) == ["rows.csv line 3"]
    assert table.data[["station_id", "parameter", "value", "qc_flag"]].values.tolist() == [
        ["THAU01", "turbidity", 5.21, 1]
    ]
    assert _files(tmp_path) == ["rows.csv"]


def test_station_id_nan_is_a_name_not_a_missing_value(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text(_bad_row("THAU01", "NaN"))
    table = _read_quietly(tmp_path / "rows.csv")
    assert table.rejected.empty
    assert table.data["station_id"].tolist() == ["THAU01", "NaN"]
    assert table.data["value"].tolist() == [5.21, 6.0]


def test_odv_without_parameter_mapping_reads_by_column_labels(tmp_path: Path) -> None:
    (tmp_path / "profiles.txt").write_text(_odv_without_mapping())
    columns = ["station_id", "time", "depth", "parameter", "value", "unit", "qc_flag"]
    got = _read_quietly(tmp_path / "profiles.txt").data[columns]
    expected = _read_quietly(INSITU_DATA / "insitu" / "odv-profiles-example.txt").data[columns]
    assert len(got) == 7
    assert got.reset_index(drop=True).equals(expected.reset_index(drop=True))
    assert _files(tmp_path) == ["profiles.txt"]


def test_negative_depth_is_flagged_bad(tmp_path: Path) -> None:
    """Depth -3 (metres below the surface): kept with flag 4 and the reason, as other
    implausible values are; a depth beyond the deepest ocean too."""
    text = _bad_row(",0.5,", ",-3,") + ROW.replace("0.5", "12000").replace("5.21", "7.0")
    (tmp_path / "rows.csv").write_text(text)
    table = _read_quietly(tmp_path / "rows.csv")
    assert table.rejected.empty
    got = table.data[["depth", "value", "qc_flag"]].values.tolist()
    assert got == [[0.5, 5.21, 1], [-3.0, 6.0, 4], [12000.0, 7.0, 4]]
    assert list(table.flagged["row"]) == ["rows.csv line 3", "rows.csv line 4"]
    reasons = list(table.flagged["reason"])
    assert reasons[0].startswith(
        "depth -3.0 m is outside the plausible range [0, 11000] m below the surface"
    )
    assert reasons[0].endswith("qc_flag set to 4 (bad)")
    assert reasons[1].startswith("depth 12000.0 m is outside the plausible range")
    assert insitu.DEPTH_RANGE == (0.0, 11000.0)
    assert _files(tmp_path) == ["rows.csv"]


def test_assets_on_a_server_without_range_requests_say_so(tmp_path: Path) -> None:
    """Python's http.server sends the whole file to a Range request (status 200): GDAL cannot
    read remote rasters there, and the error names the host and what to do."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    big = np.arange(600 * 600, dtype="uint32").reshape(600, 600).astype("uint16")
    _tif(tmp_path / "red.tif", big)  # bigger than GDAL's first read (a small file is whole)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(lab.AssetReadError) as caught:
            _load_all([_stac(f"http://{host}/red.tif", shape=(600, 600))], ["red"])
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert f"the server {host} does not answer HTTP range requests" in message
    assert "download them and use local paths" in message
    assert_clear(message)
