"""Cube builds on object storage: a real S3 server (moto) on loopback, reached over HTTP.

The centres file names the environment variables holding the credentials; the tests check
that the values never reach any stored object nor the intake catalogue.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr
from s3_server import KEY, KEY_ENV, REGION, SECRET, SECRET_ENV, Bucket, s3_bucket, s3_server  # noqa: F401
from test_build import SPEC, clean, items, sample_items, spec_file, store_hashes, write_federation  # noqa: F401

import datacubes
import lab

pytestmark = pytest.mark.integration


def _centres(tmp_path: Path, bucket: Bucket, sample_dir: Path) -> Path:
    storage = {
        "url": f"{bucket.url}/cubes",
        "endpoint_url": bucket.endpoint,
        "key_env": KEY_ENV,
        "secret_env": SECRET_ENV,
        "region": REGION,
    }
    return write_federation(
        tmp_path, sample_items(sample_dir), sample_dir=sample_dir, storage=storage
    )


def _objects(bucket: Bucket) -> dict[str, tuple[str, object]]:
    client = bucket.client()
    listed = client.list_objects_v2(Bucket=bucket.name)["Contents"]
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listed}


def test_build_into_a_centre_bucket(clean, s3_bucket, sample_dir, tmp_path):  # noqa: F811
    centres = _centres(tmp_path, s3_bucket, sample_dir)
    spec = spec_file(tmp_path, target={**SPEC["target"], "centre": "cubes"})
    report = datacubes.build(spec, centres=str(centres), workers=2, cog=True)
    url = f"{s3_bucket.url}/cubes/thau-test.zarr"
    assert report.url == url and report.complete and report.cogs_written == 48
    keys = set(s3_bucket.keys())
    for key in (
        "cubes/thau-test.zarr/zarr.json",
        "cubes/thau-test.zarr/red/zarr.json",
        "cubes/thau-test.meta/manifest.json",
        "cubes/thau-test.meta/item.json",
        "cubes/thau-test.meta/collection.json",
        "cubes/thau-test.cog/red/thau-test_red_20211003T104000.tif",
    ):
        assert key in keys, key
    assert store_hashes(url, s3_bucket.storage_options()) == clean["hashes"]
    client = s3_bucket.client()
    for key in keys:  # credentials are never written anywhere
        body = client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
        assert SECRET.encode() not in body and KEY.encode() not in body, key
    item = json.loads(
        client.get_object(Bucket=s3_bucket.name, Key="cubes/thau-test.meta/item.json")[
            "Body"
        ].read()
    )
    assert item["assets"]["zarr"]["href"] == url
    assert item["assets"]["zarr"]["xarray:storage_options"] == {
        "client_kwargs": {"endpoint_url": s3_bucket.endpoint}
    }

    before = _objects(s3_bucket)
    again = datacubes.build(spec, centres=str(centres), cog=True)
    assert (again.writes, again.regions_written) == (0, 0) and _objects(s3_bucket) == before

    # discoverable: listed in the centre's store, found by the federated search, opened by name
    assert [c.id for c in datacubes.list_cubes(centre="cubes", centres=str(centres))] == [
        "thau-test"
    ]
    found = lab.catalog(str(centres)).search(collections=["thau-test"])
    assert [i.id for i in found] == ["thau-test"] and found[0].properties[
        "earthlab:centre"
    ] == "cubes"
    opened = datacubes.open_cube(found[0], centres=str(centres))
    local = datacubes.open_cube(str(clean["url"]))
    xr.testing.assert_equal(opened["red"].load(), local["red"].load())

    import intake

    path = datacubes.write_intake_catalog(tmp_path / "lab.yaml", str(centres))
    text = Path(path).read_text()
    assert SECRET not in text and KEY not in text
    assert f"{{env({SECRET_ENV})}}" in text and s3_bucket.endpoint in text
    cube = intake.from_yaml_file(path)["thau-test"].read()
    xr.testing.assert_equal(cube["scl"].load(), local["scl"].load())


def test_interrupted_s3_build_resumes(clean, s3_bucket, sample_dir, tmp_path):  # noqa: F811
    from datacubes import _fill

    centres = _centres(tmp_path, s3_bucket, sample_dir)
    url = f"{s3_bucket.url}/cubes/resumed.zarr"
    real = _fill.fill_region
    calls = []

    def dies_after_five(job):
        calls.append(job.region.key)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real(job)

    _fill.fill_region = dies_after_five
    try:
        with pytest.raises(KeyboardInterrupt):
            datacubes.build(clean["spec"], target=url, centres=str(centres), workers=1)
    finally:
        _fill.fill_region = real
    manifest = json.loads(
        s3_bucket.client()
        .get_object(Bucket=s3_bucket.name, Key="cubes/resumed.meta/manifest.json")["Body"]
        .read()
    )
    done = sum(b - a for ranges in manifest["filled"].values() for a, b in ranges) // 4
    assert done == 5 and manifest["complete"] is False
    report = datacubes.build(clean["spec"], target=url, centres=str(centres))
    assert report.complete and (report.regions_skipped, report.regions_written) == (5, 11)
    assert store_hashes(url, s3_bucket.storage_options()) == clean["hashes"]


def test_missing_credentials_are_named(clean, s3_bucket, sample_dir, tmp_path, monkeypatch):  # noqa: F811
    centres = _centres(tmp_path, s3_bucket, sample_dir)
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(lab.CentresFileError, match=f"environment variable {SECRET_ENV} is not set"):
        datacubes.build(clean["spec"], target=f"{s3_bucket.url}/cubes/x.zarr", centres=str(centres))


def test_a_cluster_computes_the_regions_and_this_process_writes_them(
    clean,  # noqa: F811
    s3_bucket,  # noqa: F811
    monkeypatch,
):
    """``write_from_client``: the workers compute, the client writes (the job of the lab's
    processing service on a user's gateway cluster: the store's credentials stay with it)."""
    import distributed

    for name in (KEY_ENV, SECRET_ENV):  # the credentials are given here, to this process only
        monkeypatch.delenv(name)
    url = f"{s3_bucket.url}/cubes/from-client.zarr"
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        with distributed.get_task_stream(client) as stream:
            report = datacubes.build(
                clean["spec"],
                target=url,
                centres=str(clean["centres"]),
                client=client,
                storage_options=s3_bucket.storage_options(),
                write_from_client=True,
            )
        ran = {str(task["key"]).split("-")[0] for task in stream.data}
    assert report.complete and report.regions_written == 16
    assert store_hashes(url, s3_bucket.storage_options()) == clean["hashes"]
    assert "compute_values" in ran and "fill_region" not in ran, ran


def test_a_gridded_product_opens_through_references_in_a_bucket(s3_bucket, sample_dir):  # noqa: F811
    """The sample's ocean-colour product copied to a private bucket: its references (relative
    targets) open with the asset's storage options, the chunks read from the bucket."""
    import numpy as np
    import pystac

    product = sample_dir / "odatis" / "ocean-colour-daily"
    client = s3_bucket.client()
    for path in [product / "references.json", *sorted(product.glob("OC_THAU_*/*.nc"))]:
        client.upload_file(str(path), s3_bucket.name, f"oc/{path.relative_to(product)}")
    collection = pystac.Collection.from_file(str(product / "collection.json"))
    document = collection.to_dict(include_self_link=False, transform_hrefs=False)
    document["links"] = []
    document["assets"]["references"]["href"] = f"{s3_bucket.url}/oc/references.json"
    document["assets"]["references"]["xarray:storage_options"] = s3_bucket.storage_options()
    window = {"datetime": "2021-11-01/2021-11-09", "bbox": [3.6, 43.38, 3.66, 43.42]}
    remote = datacubes.load_gridded(document, **window)
    local = datacubes.load_gridded(collection, **window)
    assert remote.sizes["time"] == 9
    np.testing.assert_array_equal(remote["chl"].to_numpy(), local["chl"].to_numpy())
    # without the credentials the bucket refuses: the error says what was opened
    del document["assets"]["references"]["xarray:storage_options"]
    with pytest.raises(
        lab.AssetReadError,
        match=r"^cannot read the references s3:.*NoCredentialsError.*xarray:storage_options",
    ):
        datacubes.load_gridded(document, **window).compute()
