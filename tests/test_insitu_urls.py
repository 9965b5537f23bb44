"""In-situ readers take URLs wherever they take paths: http(s) (the hub serves the stations'
assets over http://), file:// and s3://, with format sniffing, and the same table as a local
read."""

from __future__ import annotations

import functools
import shutil
import threading
import warnings
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pystac
import pytest
from s3_server import s3_bucket, s3_server  # noqa: F401
from test_insitu import DSG, GLIDER, SOMLIT, _write_sample_parquet

import lab
from lab import AssetReadError
from lab._http import user_agent
from recipes import InSituFormatError, insitu

DATA = Path(__file__).parent / "data" / "insitu"
ANALYSES = "hubeau-v1-qualite_rivieres-analyse_pc-05134550-page1.json"
STATIONS = "hubeau-v1-qualite_rivieres-station_pc-dept11.json"
#: Served file -> reader options (every reader, format sniffed from the URL and the content).
FILES = {
    "THAU01.parquet": {},
    "sample-style-THAU01.csv": {},
    "erddap-two-line-header.csv": {},
    "odv-profiles-example.txt": {},
    "somlit-semicolon-999999.csv": {},
    GLIDER: {"station_id": "amelia", "lon": -70.9, "lat": 40.6},
    SOMLIT: {},
    DSG: {},
}


class _Server:
    """A stdlib HTTP server on loopback serving one directory, recording the requests' headers."""

    def __init__(self, root: Path):
        self.seen: list[tuple[str, str]] = []
        seen = self.seen

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("User-Agent", "")))
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, reference_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("served")
    for name in FILES:
        for where in (DATA, reference_dir / "insitu"):
            if (where / name).exists():
                shutil.copy(where / name, root / name)
    for name in (ANALYSES, STATIONS):
        shutil.copy(reference_dir / "insitu" / name, root / name)
    _write_sample_parquet(root / "THAU01.parquet")
    assert sorted(p.name for p in root.iterdir()) == sorted([*FILES, ANALYSES, STATIONS])
    return root


@pytest.fixture(scope="module")
def server(served: Path) -> Iterator[_Server]:
    running = _Server(served)
    yield running
    running.close()


def _read(location: object, **options: object) -> insitu.InSituTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
        return insitu.read(location, **options)


def _same(local: insitu.InSituTable, remote: insitu.InSituTable) -> None:
    assert len(local.data) > 0
    pd.testing.assert_frame_equal(local.data, remote.data)
    pd.testing.assert_frame_equal(local.rejected, remote.rejected)
    pd.testing.assert_frame_equal(local.flagged, remote.flagged)
    assert local.notes == remote.notes


@pytest.mark.parametrize("name", sorted(FILES))
def test_http_and_file_urls_give_the_local_table(name, served, server):
    local = _read(served / name, **FILES[name])
    over_http = _read(f"{server.url}/{name}", **FILES[name])
    over_file = _read((served / name).as_uri(), **FILES[name])
    _same(local, over_http)
    _same(local, over_file)
    assert insitu.sniff(f"{server.url}/{name}") == insitu.sniff(served / name)
    # fetched once, through a lab session (its User-Agent), not re-downloaded per step
    asked = [agent for path, agent in server.seen if path == f"/{name}"]
    assert asked[-1] == user_agent()


def test_each_reader_takes_a_url(served, server):
    url = server.url
    pairs = [
        (insitu.read_table, "sample-style-THAU01.csv", {}),
        (insitu.read_erddap, "erddap-two-line-header.csv", {}),
        (insitu.read_odv, "odv-profiles-example.txt", {}),
        (insitu.read_somlit, "somlit-semicolon-999999.csv", {}),
        (insitu.read_dsg, DSG, {}),
        (insitu.read_erddap, GLIDER, FILES[GLIDER]),
    ]
    for reader, name, options in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
            remote = reader(f"{url}/{name}", **options)
            local = reader(served / name, **options)
        _same(local, remote)
        assert remote.source == name  # labelled by the file name, as a local read


def test_hubeau_pages_over_http_are_joined_as_local_files(served, server):
    local = _read([served / ANALYSES, served / STATIONS])
    remote = _read([f"{server.url}/{ANALYSES}", f"{server.url}/{STATIONS}"])
    _same(local, remote)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", insitu.NaiveTimeWarning)
        direct = insitu.read_hubeau(f"{server.url}/{ANALYSES}", f"{server.url}/{STATIONS}")
    _same(local, direct)


def test_a_missing_remote_file_names_the_url_and_the_answer(server):
    url = f"{server.url}/stations/MEZE_LAND.parquet"
    with pytest.raises(AssetReadError, match="404") as caught:
        insitu.read(url)
    assert url in str(caught.value)
    assert "http:/1" not in str(caught.value)  # never a URL mangled into a path
    with pytest.raises(AssetReadError, match="404"):
        insitu.read_table(url)
    with pytest.raises(AssetReadError, match="404"):
        insitu.sniff(url)


def test_a_missing_local_file_keeps_its_error(tmp_path):
    with pytest.raises(InSituFormatError, match="does not exist"):
        insitu.read(tmp_path / "nothing.parquet")
    with pytest.raises(InSituFormatError, match="does not exist"):
        insitu.read((tmp_path / "nothing.parquet").as_uri())


def test_s3_url_with_storage_options(served, s3_bucket):  # noqa: F811
    client = s3_bucket.client()
    for name in ("THAU01.parquet", "somlit-semicolon-999999.csv", DSG):
        client.put_object(
            Bucket=s3_bucket.name, Key=f"insitu/{name}", Body=(served / name).read_bytes()
        )
        url = f"{s3_bucket.url}/insitu/{name}"
        _same(_read(served / name), _read(url, storage_options=s3_bucket.storage_options()))
    missing = f"{s3_bucket.url}/insitu/none.parquet"
    with pytest.raises(AssetReadError, match="does not exist") as caught:
        insitu.read(missing, storage_options=s3_bucket.storage_options())
    assert missing in str(caught.value)


def test_crossing_reads_station_assets_served_over_http(served, server):
    from recipes.crossing import _read_insitu

    item = pystac.Item("THAU01", None, None, pd.Timestamp("2022-01-01").to_pydatetime(), {})
    item.add_asset("parquet", pystac.Asset(f"{server.url}/THAU01.parquet"))
    table = _read_insitu([item], centres=None)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(table, _read(served / "THAU01.parquet").data)


def test_open_cube_over_http_from_a_server_without_directory_answers(tmp_path):
    """``datacubes.open_cube`` takes an http URL, also from a file server (like the hub's
    asset front) that answers 404 for the store's directory itself."""
    import numpy as np
    import xarray as xr

    import datacubes

    cube = xr.Dataset({"turbidity": (("y", "x"), np.arange(12.0).reshape(3, 4))})
    cube.to_zarr(tmp_path / "c.zarr", consolidated=True)

    class FilesOnly(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if (tmp_path / self.path.lstrip("/")).is_dir():
                self.send_error(404)
                return
            super().do_GET()

        def do_HEAD(self) -> None:
            if (tmp_path / self.path.lstrip("/")).is_dir():
                self.send_error(404)
                return
            super().do_HEAD()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(FilesOnly, directory=tmp_path))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr: consolidated metadata is not in Zarr v3
            opened = datacubes.open_cube(f"{url}/c.zarr")
            np.testing.assert_array_equal(opened["turbidity"].values, cube["turbidity"].values)
        with pytest.raises(
            lab.ConfigurationError, match=r"no cube at http://127\.0\.0\.1:\d+/none"
        ):
            datacubes.open_cube(f"{url}/none.zarr")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(30)
