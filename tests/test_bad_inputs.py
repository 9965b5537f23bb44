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
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import datacubes
import lab
from lab._centres import read_centres_file
from lab._cli import main

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
