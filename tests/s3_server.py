"""A real S3-compatible server on loopback for tests: moto in server mode, over HTTP.

Import the fixtures into a test module::

    from s3_server import s3_bucket, s3_server  # noqa: F401

``s3_server`` starts one moto server per test module on 127.0.0.1 (a free port) and yields its
endpoint URL; ``s3_bucket`` creates a fresh bucket with boto3 (s3fs would send a location
constraint the server may refuse) and exports test credentials in the environment variables
``EARTHLAB_TEST_S3_KEY`` / ``EARTHLAB_TEST_S3_SECRET``, the names a centres file refers to.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

KEY_ENV = "EARTHLAB_TEST_S3_KEY"
SECRET_ENV = "EARTHLAB_TEST_S3_SECRET"
KEY = "earthlab-test-key"
SECRET = "earthlab-test-secret-do-not-write"
REGION = "us-east-1"


@dataclass(frozen=True)
class Bucket:
    """A bucket on the test server."""

    name: str
    """Bucket name."""
    endpoint: str
    """``http://127.0.0.1:<port>``."""

    @property
    def url(self) -> str:
        """``s3://<name>``."""
        return f"s3://{self.name}"

    def client(self):
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )

    def keys(self) -> list[str]:
        """Every object key in the bucket."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            o["Key"]
            for page in paginator.paginate(Bucket=self.name)
            for o in page.get("Contents", [])
        ]

    def storage_options(self) -> dict:
        """fsspec options reaching the bucket."""
        return {
            "key": KEY,
            "secret": SECRET,
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": REGION},
        }


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a moto S3 server running on loopback for this module.

    Its own process (``python -m moto.server``), not a thread of the test session: a test
    blocked in a call holding the GIL (GDAL opening a URL served from the bucket through
    another server) would otherwise stop the store it waits for.
    """
    # moto[server] is in the `test` extra: if it is missing the run must fail, not skip.
    import moto.server  # noqa: F401
    import requests

    from lab_server.deploy._procs import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(endpoint + "/moto-api/", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the S3 server did not start: {log.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new empty bucket, with test credentials exported in ``KEY_ENV`` / ``SECRET_ENV``."""
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    bucket = Bucket(f"cubes-{uuid.uuid4().hex[:10]}", s3_server)
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket
