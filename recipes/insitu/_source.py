"""Where an in-situ file comes from: a local path or an fsspec URL (``http(s)``, ``s3``, ``file``).

Every reader takes its files through :func:`as_source`. A :class:`Source` names the file as the
user gave it (the URL, never a path made from it), tells its base name and extension (format
sniffing works for URLs) and reads its bytes once: in-situ files are small, so a remote one is
fetched into memory, ``http(s)`` through a lab session (:func:`lab.http_session`, the lab's
retry policy and User-Agent), other schemes through fsspec with the ``storage_options`` given.
``file://`` URLs are read as the local paths they name.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from lab import AssetReadError, http_session
from recipes._errors import InSituFormatError

PathLike = str | os.PathLike[str]


def _scheme(text: str) -> str:
    """The URL scheme of ``text`` (lower case), or ``""`` for a plain path."""
    if "://" not in text:
        return ""
    scheme = urlsplit(text).scheme.lower()
    return scheme if len(scheme) > 1 else ""  # "C://..." is a Windows drive, not a scheme


class Source:
    """One in-situ file: a local path or a URL, read once.

    Parameters
    ----------
    location
        A path, a ``file://`` URL or any URL fsspec opens (``http(s)://``, ``s3://``...).
    storage_options
        fsspec options for URLs other than ``http(s)`` and ``file`` (e.g. S3 credentials).
    """

    def __init__(
        self, location: PathLike, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        text = os.fspath(location)
        self.storage_options = dict(storage_options or {})
        self.scheme = _scheme(text)
        self.path: Path | None = None
        if self.scheme == "file":
            self.path = Path(url2pathname(urlsplit(text).path))
        elif not self.scheme:
            self.path = Path(text)
        self.label = text if self.scheme else str(self.path)
        """The file as given: the URL, or the path."""
        self._data: bytes | None = None

    @property
    def remote(self) -> bool:
        """Whether the file is not a local file (it is fetched into memory)."""
        return self.path is None

    @property
    def name(self) -> str:
        """The file's base name (the last segment of a URL's path)."""
        if self.path is not None:
            return self.path.name
        name = PurePosixPath(unquote(urlsplit(self.label).path)).name
        return name or self.label

    @property
    def suffix(self) -> str:
        """The file's extension, lower case (``.parquet``)."""
        return PurePosixPath(self.name).suffix.lower()

    def __repr__(self) -> str:
        return f"Source({self.label!r})"

    def read(self) -> bytes:
        """Return the file's bytes (fetched once).

        Raises
        ------
        recipes.InSituFormatError
            If a local file does not exist.
        lab.AssetReadError
            If a remote file cannot be fetched (the message names the URL and the answer).
        lab.HttpError
            If an HTTP server does not answer (after the lab's retries).
        """
        if self._data is None:
            self._data = self._fetch()
        return self._data

    def _fetch(self) -> bytes:
        if self.path is not None:
            if not self.path.is_file():
                raise InSituFormatError(
                    f"in-situ file {self.label} does not exist (check the path)"
                )
            return self.path.read_bytes()
        if self.scheme in ("http", "https"):
            with http_session() as session:
                response = session.get(self.label)
            if not 200 <= response.status_code < 300:
                raise AssetReadError(
                    f"in-situ file {self.label} could not be read: the server answered "
                    f"{response.status_code} {response.reason} (check the URL, or that the data "
                    "centre serves it)"
                )
            return response.content
        import fsspec

        try:
            with fsspec.open(self.label, "rb", **self.storage_options) as stream:
                data: bytes = stream.read()
        except FileNotFoundError as exc:
            raise AssetReadError(
                f"in-situ file {self.label} does not exist (check the URL): {exc}"
            ) from exc
        except (OSError, ValueError, ImportError) as exc:
            raise AssetReadError(
                f"in-situ file {self.label} could not be read: {type(exc).__name__}: {exc} "
                "(check the URL and the storage_options, e.g. credentials)"
            ) from exc
        return data

    def check_not_empty(self) -> None:
        """Raise :class:`InSituFormatError` if the file is missing or holds nothing but blanks."""
        if not self.read()[:4096].strip():
            raise InSituFormatError(
                f"in-situ file {self.label} is empty: nothing to read (was the download "
                "interrupted?)"
            )

    def head(self, size: int = 65536) -> bytes:
        """The first ``size`` bytes."""
        return self.read()[:size]

    def text(self) -> str:
        """The file decoded as UTF-8 (undecodable bytes replaced)."""
        return self.read().decode("utf-8", errors="replace")

    def decode(self, encoding: str | None = None) -> tuple[str, str | None]:
        """The file as text, and a note when its encoding was guessed.

        With ``encoding`` the bytes are decoded with it (an error says which byte failed).
        Without: a byte-order mark decides; otherwise UTF-8, and if the bytes are not UTF-8,
        ISO-8859-1 (Latin-1, what ERDDAP serves CSV in and many ODV exports are written in),
        with a note saying so.

        Raises
        ------
        recipes.InSituFormatError
            If ``encoding`` is not known or does not decode the file.
        """
        data = self.read()
        if encoding is not None:
            try:
                return data.decode(encoding), None
            except LookupError as exc:
                raise InSituFormatError(
                    f"encoding={encoding!r} is not a known text encoding (examples: 'utf-8', "
                    "'latin-1', 'cp1252')"
                ) from exc
            except UnicodeDecodeError as exc:
                raise InSituFormatError(
                    f"{self.label} is not {encoding} text (byte {exc.start}: {exc.reason}); "
                    "pass the file's encoding= (e.g. 'latin-1') or leave it out to detect it"
                ) from exc
        for bom, name in (
            (b"\xef\xbb\xbf", "utf-8-sig"),
            (b"\xff\xfe", "utf-16"),
            (b"\xfe\xff", "utf-16"),
        ):
            if data.startswith(bom):
                return data.decode(name), None
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            note = (
                f"{self.name} is not UTF-8 (byte {exc.start}): read as ISO-8859-1 (Latin-1); "
                "pass encoding= if it is another one"
            )
            return data.decode("latin-1"), note

    def open(self) -> IO[bytes]:
        """A binary file object on the bytes (for pandas)."""
        return io.BytesIO(self.read())

    @contextlib.contextmanager
    def local_path(self) -> Iterator[Path]:
        """A local path holding the file: the file itself, or a temporary copy of a remote one.

        (netCDF libraries want a path.)
        """
        if self.path is not None:
            self.read()  # the clear error if it is missing
            yield self.path
            return
        with tempfile.TemporaryDirectory(prefix="earthlab-insitu-") as tmp:
            copy = Path(tmp) / (self.name or "file")
            copy.write_bytes(self.read())
            yield copy


def as_source(
    location: PathLike | Source, storage_options: Mapping[str, Any] | None = None
) -> Source:
    """A :class:`Source` for a path or URL (a Source is returned as is)."""
    if isinstance(location, Source):
        return location
    if not isinstance(location, str | os.PathLike):
        raise InSituFormatError(
            f"expected a path or URL of an in-situ file, got {type(location).__name__}: "
            f"{location!r}"
        )
    return Source(location, storage_options)
