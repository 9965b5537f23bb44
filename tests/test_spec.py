"""Cube specs: the shipped specs validate, every invalid field is named, hashes are stable."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import yaml

import datacubes
from datacubes._grid import S2_TILE_SIZE, item_tile, mgrs_square, spec_geobox
from datacubes._spec import Chunks, CompositeSpec, EncodingSpec, GridSpec

SAMPLE_SPEC = "thau-lagoon-sample"
TILE_SPEC = "s2-31tej-2023"

# The hash a store remembers; changing the hashing (or the sample spec) orphans existing stores,
# so it is pinned here on purpose.
SAMPLE_HASH = "4421b20f7f0d96ef"


@pytest.fixture()
def sample_doc() -> dict:
    return yaml.safe_load(datacubes.shipped_specs()[SAMPLE_SPEC].read_text())


def test_shipped_specs_are_found_by_name():
    shipped = datacubes.shipped_specs()
    assert set(shipped) == {SAMPLE_SPEC, TILE_SPEC}
    for name, path in shipped.items():
        assert path.name == f"{name}.yaml"
        assert datacubes.read_spec(name).name == name  # file name and cube name agree


def test_sample_spec_reads_into_frozen_objects():
    spec = datacubes.read_spec(SAMPLE_SPEC)
    assert spec.source.centres == ("theia",)
    assert spec.source.collections == ("sentinel-2-l2a",)
    assert spec.source.datetime == "2021-10-01/2022-12-31"
    assert spec.bands == ("blue", "green", "red", "rededge1", "nir", "nir08", "swir16", "scl")
    assert spec.cloud_mask == "clouds"
    assert spec.grid == GridSpec(
        resolution=20.0, crs="EPSG:32631", bounds=(541800.0, 4796860.0, 557800.0, 4812860.0)
    )
    assert spec.target.zarr_format == 3
    assert spec.target.chunks == Chunks(4, 400, 400)
    assert spec.target.shards == Chunks(4, 800, 800)
    assert spec.target.write_unit == Chunks(4, 800, 800)
    assert spec.encoding == EncodingSpec()
    assert spec.licence == "CC-BY-4.0"
    assert spec.composite is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    # the grid is exactly the sample scene grid of docs/sample-federation.md
    gbox = spec_geobox(spec.grid)
    assert gbox.shape == (800, 800)
    assert tuple(gbox.transform)[:6] == (20.0, 0.0, 541800.0, 0.0, -20.0, 4812860.0)


def test_production_spec_validates_offline():
    spec = datacubes.read_spec(TILE_SPEC)
    assert spec.source.catalog is not None
    assert spec.source.catalog.kind == "stac-api"
    assert spec.source.catalog.href == "https://earth-search.aws.element84.com/v1"
    assert spec.source.max_cloud_cover == 60.0
    assert spec.source.filter == {"op": "=", "args": [{"property": "grid:code"}, "MGRS-31TEJ"]}
    assert spec.grid.tile == "31TEJ"
    assert spec.grid.crs == "EPSG:32631"  # implied by the tile
    assert spec.encoding == EncodingSpec("int16", 0.0001, 0.0, -32768.0)
    assert spec.target.shards == Chunks(8, 1830, 1830)
    assert spec.target.write_unit == Chunks(8, 1830, 1830)
    # 20 m chunks and shards tile the 5490-pixel Sentinel-2 tile exactly
    rows = round(S2_TILE_SIZE / spec.grid.resolution)
    assert rows == 5490
    assert rows % spec.target.chunks.y == 0 and rows % spec.target.shards.y == 0


def test_spec_hash_is_pinned_and_ignores_descriptive_fields(sample_doc):
    spec = datacubes.read_spec(sample_doc)
    assert spec.hash == SAMPLE_HASH
    described = {
        **sample_doc,
        "title": "x",
        "description": "y",
        "licence": "CC0-1.0",
        "keywords": ["z"],
    }
    described["target"] = {**sample_doc["target"], "url": "elsewhere/other.zarr"}
    assert datacubes.read_spec(described).hash == SAMPLE_HASH
    assert datacubes.read_spec({**sample_doc, "name": "other"}).hash == SAMPLE_HASH
    changes = [
        {"bands": ["red"]},
        {"cloud_mask": None},
        {
            "grid": {
                **sample_doc["grid"],
                "resolution": 40,
                "bounds": [541800, 4796840, 557800, 4812840],
            }
        },
        {"target": {**sample_doc["target"], "chunks": {"time": 2, "y": 400, "x": 400}}},
        {"target": {**sample_doc["target"], "zarr_format": 2, "shards": None}},
        {"source": {**sample_doc["source"], "datetime": "2022"}},
        {"composite": {"period": "month"}, "bands": ["red"]},
    ]
    hashes = {datacubes.read_spec({**sample_doc, **change}).hash for change in changes}
    assert len(hashes) == len(changes) and SAMPLE_HASH not in hashes


def test_integer_and_float_spellings_hash_alike(sample_doc):
    doc = copy.deepcopy(sample_doc)
    doc["grid"]["resolution"] = 20.0
    assert datacubes.read_spec(doc).hash == SAMPLE_HASH


def test_yaml_round_trip(tmp_path):
    spec = datacubes.read_spec(TILE_SPEC)
    path = tmp_path / "again.yaml"
    path.write_text(spec.to_yaml())
    again = datacubes.read_spec(path)
    assert again == spec
    assert again.hash == spec.hash
    assert again.path == str(path)


def _set(doc: dict, dotted: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last)
    else:
        node[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("colour", "blue", "colour: unknown field"),
        ("licence", _DELETE, "licence: is required"),
        ("name", "Thau Lagoon", "name: must be lower-case"),
        ("bands", [], "bands: must be a non-empty list"),
        ("bands", ["red", "red"], "bands: are repeated"),
        ("cloud_mask", "cirrus", "cloud_mask: must be 'clouds'"),
        ("cloud_mask", [3, 12], "cloud_mask: classes must be Sentinel-2 SCL values"),
        ("source.collections", _DELETE, "source.collections: is required"),
        ("source.bbox", [3.7, 43.3, 3.5, 43.5], "source.bbox:"),
        ("source.datetime", "2022-13", "source.datetime:"),
        ("source.max_cloud_cover", 120, "source.max_cloud_cover: must be a percentage"),
        ("source.catalog", {"kind": "ftp", "href": "x"}, "source.catalog.kind: must be one of"),
        (
            "source.catalog",
            {"kind": "stac-api", "href": "https://x"},
            "source.centres: is exclusive with catalog",
        ),
        (
            "source.centre",
            ["theia"],
            "source.centre: unknown field; known fields: bbox, catalog, centres",
        ),
        ("grid.resolution", -20, "grid.resolution: must be a positive number"),
        (
            "grid.bounds",
            [541810, 4796860, 557800, 4812860],
            "grid.bounds: 541810 is not a multiple of the resolution 20",
        ),
        (
            "grid.bbox",
            [3.5, 43.3, 3.7, 43.5],
            "grid.extent: give exactly one of bounds, bbox or tile",
        ),
        ("grid.crs", "EPSG:999999", "grid.crs: 'EPSG:999999' is not a valid CRS"),
        ("grid.tile", "31TEI", "grid.extent: give exactly one"),
        ("encoding.dtype", "int16", "encoding.scale_factor: is required with dtype int16"),
        ("encoding.nodata", 0, "encoding.nodata: float cubes store no data as NaN"),
        ("encoding.dtype", "complex64", "encoding.dtype: must be one of"),
        ("target.url", "cube.nc", "target.url: 'cube.nc' must end with .zarr"),
        ("target.zarr_format", 4, "target.zarr_format: must be 2 or 3"),
        (
            "target.chunks",
            {"time": 4, "y": 0, "x": 400},
            "target.chunks.y: must be a positive integer",
        ),
        ("target.chunks", {"time": 4, "y": 400}, "target.chunks: give sizes for time, y and x"),
        (
            "target.shards",
            {"time": 4, "y": 600, "x": 800},
            "target.shards: y (600) must be a multiple of the chunk size (400)",
        ),
        ("composite", {"period": "fortnight"}, "composite.period: must be day, week, month"),
        (
            "composite",
            {"period": "month", "method": "mode"},
            "composite.method: must be one of median",
        ),
        ("composite", {"period": "month"}, "composite: cannot reduce class bands (scl)"),
        ("version", 2, "version: 2 is not supported"),
    ],
)
def test_invalid_fields_are_named(sample_doc, field, value, message):
    with pytest.raises(datacubes.SpecError) as info:
        datacubes.read_spec(_set(sample_doc, field, value))
    assert message in str(info.value)


def test_shards_need_zarr_3(sample_doc):
    doc = _set(sample_doc, "target.shards", {"time": 4, "y": 800, "x": 800})
    assert datacubes.read_spec(doc).target.write_unit == Chunks(4, 800, 800)
    with pytest.raises(datacubes.SpecError, match=r"target\.shards: need zarr_format 3"):
        datacubes.read_spec(_set(doc, "target.zarr_format", 2))


def test_tile_grid_rules():
    with pytest.raises(datacubes.SpecError, match=r"grid\.tile: 'T31EJ' is not an MGRS tile"):
        datacubes.read_spec(
            {
                "name": "x",
                "licence": "l",
                "bands": ["red"],
                "source": {"collections": ["c"]},
                "grid": {"tile": "T31EJ", "resolution": 20},
            }
        )
    with pytest.raises(
        datacubes.SpecError, match=r"^crs: 'EPSG:32632' is not the CRS of tile 31TEJ \(EPSG:32631\)"
    ):
        GridSpec(resolution=20, tile="31TEJ", crs="EPSG:32632")
    assert GridSpec(resolution=20, tile="19HCC").crs == "EPSG:32719"  # southern hemisphere


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(datacubes.SpecError, match=f"{path}: not valid YAML"):
        datacubes.read_spec(path)
    with pytest.raises(datacubes.SpecError, match="neither a file nor a shipped spec"):
        datacubes.read_spec(tmp_path / "missing.yaml")
    path.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "licence": "l",
                "bands": ["red"],
                "source": {"collections": ["c"], "datetime": "2022-01-01"},
                "grid": {"crs": "EPSG:32631", "resolution": 10, "bbox": [3.5, 43.3, 3.7, 43.5]},
            }
        )
    )
    spec = datacubes.read_spec(path)  # a YAML date is read as text, bbox grids need no bounds
    assert spec.source.datetime == "2022-01-01"
    assert CompositeSpec("10d").method == "median"


def _reference_items(reference_dir):
    import pystac

    for path in sorted((reference_dir / "stac").glob("*.json")):
        raw = json.loads(path.read_text())
        item = pystac.Item.from_dict(copy.deepcopy(raw))
        if item_tile(item):
            yield path.name, item_tile(item), raw


def test_mgrs_squares_match_real_sentinel2_items(reference_dir):
    """The MGRS square of each real item's tile starts where its grid does (within 60 m)."""
    checked = 0
    for name, tile, raw in _reference_items(reference_dir):
        asset = next(a for a in raw["assets"].values() if a.get("proj:transform"))
        _a, _, c, _, e, f = asset["proj:transform"][:6]
        epsg, (xmin, _ymin, _xmax, ymax) = mgrs_square(tile)
        code = raw["properties"].get("proj:epsg") or asset.get("proj:epsg")
        code = code or int(
            str(asset.get("proj:code") or raw["properties"]["proj:code"]).split(":")[1]
        )
        assert epsg == code, name
        assert abs(c - xmin) <= 60 and abs(f - ymax) <= 60, (name, tile, c, f, xmin, ymax)
        rows = asset["proj:shape"][0]
        assert rows * abs(e) == pytest.approx(S2_TILE_SIZE, abs=400), (
            name
        )  # decimated fixtures round
        checked += 1
    assert checked >= 6


def test_tile_of_sample_items_is_31tej(sample_dir):
    import pystac

    item = next(
        pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json")).get_items(
            recursive=True
        )
    )
    assert item_tile(item) == "31TEJ"
    epsg, (xmin, _ymin, _xmax, ymax) = mgrs_square("31TEJ")
    assert (epsg, xmin, ymax) == (32631, 500000.0, 4900000.0)
    left, bottom, right, top = item.properties["proj:bbox"]
    assert (
        xmin <= left
        and right <= xmin + S2_TILE_SIZE
        and ymax - S2_TILE_SIZE <= bottom
        and top <= ymax
    )
