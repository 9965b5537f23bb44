"""Where users' results are kept: the service's directory, or the lab's object storage.

:class:`ResultsStorage` is one place for every user's results, ``<url>/<user>/<path>``:

- a local directory (the default, ``processes/results``): jobs write there directly;
- an S3-compatible store (``hub up --results-storage CENTRE``: that centre's ``storage`` of
  the centres file, under ``results/``): a job writes its files in a scratch directory of its
  own, and they are uploaded when it succeeds (:meth:`ResultsStorage.publish`; a failed or
  dismissed job leaves nothing half-written there). Stores a process writes itself (the
  cube build's Zarr) go to the bucket directly, where an interrupted build resumes.

Either way the results are read through the service, by their owner only, with byte ranges
(:meth:`ResultsStorage.read`): the object store's credentials stay with the service.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from lab import EarthLabError

__all__ = ["ResultNotFoundError", "ResultsStorage"]


class ResultNotFoundError(EarthLabError, LookupError):
    """No result file at that path for this user."""


@dataclass(frozen=True)
class ResultsStorage:
    """Users' results, ``<url>/<user>/<path>``.

    Parameters
    ----------
    url : str
        A local directory, or ``s3://bucket/prefix``.
    storage_options : mapping
        fsspec options of an object store (endpoint, credentials: never logged).
    """

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_local(self) -> bool:
        """Whether results are files of the service's disk (jobs write them there directly)."""
        return "://" not in self.url

    def user_url(self, user: str) -> str:
        """Where the user's results are.

        Raises
        ------
        ResultNotFoundError
            The name would leave the results' root (a ``/`` or ``..`` in it).
        """
        if not user or "/" in user or "\\" in user or user in (".", ".."):
            raise ResultNotFoundError(f"no results of user {user!r}")
        if self.is_local:
            return str(Path(self.url) / user)
        return f"{self.url.rstrip('/')}/{user}"

    def filesystem(self) -> Any:
        """The fsspec filesystem of :attr:`url`."""
        import fsspec

        return fsspec.core.url_to_fs(self.url, **dict(self.storage_options))[0]

    def _key(self, user: str, path: str) -> str:
        parts = PurePosixPath(path).parts
        if not parts or any(p in ("..", "/") for p in parts) or path.startswith("/"):
            raise ResultNotFoundError(f"no result file {path!r} of yours")
        return f"{self.user_url(user)}/{PurePosixPath(*parts).as_posix()}"

    def publish(self, scratch: Path, user: str) -> list[str]:
        """Upload what a job wrote in ``scratch`` to the user's results; the paths uploaded.

        Files already in the object store under those paths are replaced; the scratch
        directory is removed afterwards. Nothing to do for a local directory.
        """
        if self.is_local or not scratch.is_dir():
            return []
        fs = self.filesystem()
        uploaded = []
        # regular files only: a link could lead anywhere on the service's disk
        for path in sorted(p for p in scratch.rglob("*") if p.is_file() and not p.is_symlink()):
            relative = path.relative_to(scratch).as_posix()
            fs.put_file(str(path), self._key(user, relative))
            uploaded.append(relative)
        shutil.rmtree(scratch, ignore_errors=True)
        return uploaded

    def size(self, user: str, path: str) -> int:
        """The size in bytes of one of the user's result files.

        Raises
        ------
        ResultNotFoundError
            No such file (a directory is not a file).
        """
        key = self._key(user, path)
        if self.is_local:
            local = Path(key)
            root = Path(self.user_url(user)).resolve()
            # a link leading out of the user's results is not theirs
            if not local.is_file() or not local.resolve().is_relative_to(root):
                raise ResultNotFoundError(f"no result file {path!r} of yours")
            return local.stat().st_size
        fs = self.filesystem()
        try:
            info = fs.info(key)
        except FileNotFoundError:
            raise ResultNotFoundError(f"no result file {path!r} of yours") from None
        if info.get("type") != "file":
            raise ResultNotFoundError(f"{path!r} is a folder of your results, not a file")
        return int(info["size"])

    def read(self, user: str, path: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` to ``end`` (excluded) of one of the user's result files."""
        key = self._key(user, path)
        if self.is_local:
            self.size(user, path)  # refuses links leading out of the user's results
            with open(key, "rb") as f:
                f.seek(start)
                return f.read(-1 if end is None else end - start)
        return bytes(self.filesystem().cat_file(key, start=start, end=end))
