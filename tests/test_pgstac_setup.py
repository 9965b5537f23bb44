"""What the pgstac back end needs from the system, and what it says when it is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab import ConfigurationError
from lab_server.deploy import up
from lab_server.deploy._pgstac import SYSTEM_PACKAGES, find_postgres, served_documents

ROOT = Path(__file__).resolve().parent.parent


def _system(root: Path, *, postgis: bool) -> None:
    bin_dir = root / "usr/lib/postgresql/15/bin"
    bin_dir.mkdir(parents=True)
    for name in ("postgres", "initdb"):
        (bin_dir / name).write_text("")
    extensions = root / "usr/share/postgresql/15/extension"
    extensions.mkdir(parents=True)
    if postgis:
        (extensions / "postgis.control").write_text("")


def test_the_makefile_installs_the_packages_the_server_needs() -> None:
    assert SYSTEM_PACKAGES == ("postgresql", "postgresql-15-postgis-3")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (line,) = re.findall(r"^SYSTEM_PACKAGES = (.*)$", makefile, re.MULTILINE)
    assert set(SYSTEM_PACKAGES) <= set(line.split())


def test_missing_postgresql_names_the_packages(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as error:
        find_postgres(tmp_path)
    message = str(error.value)
    assert message.startswith("PostgreSQL is not installed (pgstac needs it)")
    assert "apt-get install -y --no-install-recommends postgresql postgresql-15-postgis-3" in (
        message
    )
    assert "make system-packages" in message


def test_missing_postgis_names_the_packages(tmp_path: Path) -> None:
    _system(tmp_path, postgis=False)
    with pytest.raises(ConfigurationError, match=r"PostgreSQL 15 .* has no PostGIS extension"):
        find_postgres(tmp_path)


def test_an_installed_server_is_found(tmp_path: Path) -> None:
    _system(tmp_path, postgis=True)
    assert find_postgres(tmp_path) == tmp_path / "usr/lib/postgresql/15/bin"


def test_the_real_system_has_them() -> None:
    """The tests' own machine: ``make system-packages`` installed them (CI runs as root)."""
    bin_dir = find_postgres()
    assert (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file()


def test_hub_up_refuses_an_unknown_catalogue(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="catalogue must be one of memory, pgstac"):
        up(run_dir=tmp_path / "run", catalogue="sqlite")
    assert not (tmp_path / "run").exists()


def test_collections_missing_from_the_files_are_made_from_the_items(tmp_path: Path) -> None:
    items = [
        {
            "type": "Feature",
            "id": f"a{n}",
            "collection": "c",
            "bbox": [n, 40.0, n + 1, 41.0],
            "properties": {"datetime": f"2022-0{n}-01T00:00:00Z"},
        }
        for n in (1, 2)
    ]
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    collections, loaded = served_documents([str(path)])
    assert loaded == items
    (collection,) = collections
    assert collection["id"] == "c"
    assert collection["extent"]["spatial"]["bbox"] == [[1, 40.0, 3, 41.0]]
    assert collection["extent"]["temporal"]["interval"] == [
        ["2022-01-01T00:00:00Z", "2022-02-01T00:00:00Z"]
    ]
