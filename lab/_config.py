"""The SDK's settings: one registry of keys, read from four layers, later winning.

1. the defaults, ``lab/earthlab.yaml`` (shipped with the package);
2. the user's file: the one ``EARTHLAB_CONFIG`` names, else
   ``$XDG_CONFIG_HOME/earthlab/earthlab.yaml`` (``~/.config/earthlab/earthlab.yaml``) if it
   exists; same layout as the defaults;
3. ``EARTHLAB_*`` environment variables: the key upper-cased, ``.`` written ``__``
   (``cache_dir`` -> ``EARTHLAB_CACHE_DIR``, ``http.retries`` -> ``EARTHLAB_HTTP__RETRIES``);
   a centre's gateway is ``EARTHLAB_GATEWAY_<NAME>`` and ``EARTHLAB_GATEWAY_PROXY_<NAME>``
   (``<NAME>`` is the centre name upper-cased, ``-`` written ``_``), the names the hub sets;
   an empty variable counts as unset;
4. ``lab.config.set(...)``, for a block (``with``) or for the session.

Every SDK setting read in the code goes through :data:`config` (``lab.config.get(key)``);
``docs/configuration.md`` lists the keys and every ``EARTHLAB_*`` variable. Values are checked
when read: a wrong type, an unknown key in a file or an unreadable file raises
:class:`~lab.ConfigurationError` naming the key and where it came from. The environment and the
user's file are read again at every ``get`` (the file only when it changed), so a variable set
while a kernel runs takes effect.

The design follows dask's configuration (YAML defaults, a user file, ``PREFIX_KEY__SUB``
variables, ``set`` as a context manager) with a fixed, typed registry instead of free-form keys,
so that a typo is an error rather than a setting nobody reads.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from lab._errors import ConfigurationError, EarthLabWarning

__all__ = [
    "CONFIG_ENV",
    "SETTINGS",
    "Config",
    "ConfigurationWarning",
    "Override",
    "Setting",
    "cache_dir",
    "config",
]

ENV_PREFIX = "EARTHLAB_"
CONFIG_ENV = "EARTHLAB_CONFIG"
"""Environment variable naming the user's configuration file (it must then exist)."""
GATEWAY_ENV = "EARTHLAB_GATEWAY_"
GATEWAY_PROXY_ENV = "EARTHLAB_GATEWAY_PROXY_"
NOT_GATEWAYS = frozenset({"EARTHLAB_GATEWAY_CENTRE"})
SERVER_ENV = frozenset(
    {
        "EARTHLAB_HUB_RUN_DIR",
        "EARTHLAB_GATEWAY_CENTRE",
        "EARTHLAB_POLICY_FILE",
        "EARTHLAB_KERNELS_DIR",
        "EARTHLAB_CENTRE",
    }
)
"""Variables the lab's servers set for their own processes (``lab_server.environment`` names
them; a test keeps the two in step): not settings, and never reported as misspelt ones."""
"""``EARTHLAB_GATEWAY_*`` variables that name no gateway: ``EARTHLAB_GATEWAY_CENTRE`` tells a
gateway *server* which centre it serves (set by ``earthlab hub up``, see
``lab_server.environment``)."""
RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
"""HTTP statuses a retry policy may retry: the request timed out, the server is overloaded or
a gateway in front of it failed. Never another 4xx (the request is wrong: the same request gets
the same answer) nor a plain 500 (the server refuses this request)."""
DEFAULTS = "earthlab.yaml"
"""The defaults file, in the ``lab`` package."""
_KINDS = ("path", "url", "int", "float", "statuses", "gateways")
_CENTRE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_GATEWAY_FIELDS = ("address", "proxy_address")


_WARNED: set[str] = set()  # misspelt variables already warned about in this process


class ConfigurationWarning(EarthLabWarning):
    """A setting looks wrong but the lab goes on (e.g. a misspelt ``EARTHLAB_*`` variable)."""


@dataclass(frozen=True)
class Setting:
    """One key of the configuration: its type, bounds and meaning (defaults: ``earthlab.yaml``)."""

    key: str
    """Dotted key (``http.retries``)."""
    kind: str
    """``path`` (a path or null), ``int``, ``float``, ``statuses`` (HTTP statuses) or
    ``gateways`` (centre name -> ``address``, ``proxy_address``)."""
    doc: str
    """What it sets."""
    low: float | None = None
    """Smallest value allowed (numbers)."""
    high: float | None = None
    """Largest value allowed (numbers)."""
    low_open: bool = False
    """``low`` itself is not allowed (a positive number)."""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"setting {self.key}: kind {self.kind!r} is not one of {_KINDS}")

    @property
    def env(self) -> str:
        """The environment variable that overrides it (for ``gateways``, the pattern)."""
        if self.kind == "gateways":
            return f"{GATEWAY_ENV}<NAME>"
        return ENV_PREFIX + self.key.upper().replace(".", "__")

    def check(self, value: Any) -> Any:
        """Return ``value`` normalised, or raise ``ValueError`` saying what is wrong."""
        if self.kind == "path":
            if value is None:
                return None
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or not value.strip():
                raise ValueError("must be a path (text) or null")
            return os.path.expanduser(value)
        if self.kind == "url":
            return _url(value)
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"must be an integer{self._bounds()}")
            return self._bounded(value, "an integer")
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"must be a number{self._bounds()}")
            return self._bounded(float(value), "a number")
        if self.kind == "statuses":
            return _statuses(value)
        return _gateways(value)

    def parse_env(self, text: str) -> Any:
        """Return the value an environment variable's text stands for, checked."""
        if self.kind == "int":
            try:
                return self.check(int(text.strip()))
            except ValueError:
                raise ValueError(f"must be an integer{self._bounds()}") from None
        if self.kind == "float":
            try:
                return self.check(float(text.strip()))
            except ValueError:
                raise ValueError(f"must be a number{self._bounds()}") from None
        if self.kind == "statuses":
            parts = [p for p in re.split(r"[\s,]+", text.strip().strip("[]")) if p]
            try:
                numbers = [int(p) for p in parts]
            except ValueError:
                raise ValueError("must be HTTP statuses separated by commas (429,503)") from None
            return self.check(numbers)
        return self.check(text)

    def _bounded(self, value: float, what: str) -> Any:
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            raise ValueError(f"must be {what}{self._bounds()}, got {value!r}")
        return value

    def _bounds(self) -> str:
        low = None if self.low is None else f"{self.low:g}"
        high = None if self.high is None else f"{self.high:g}"
        if low is not None and high is not None and not self.low_open:
            return f" from {low} to {high}"
        parts = []
        if low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {low}")
        if high is not None:
            parts.append(f"<= {high}")
        return (" " + " and ".join(parts)) if parts else ""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "centres",
        "path",
        "Centres file of the federation; null: the embedded sample federation (generated on "
        "first use into cache_dir).",
    ),
    Setting(
        "cache_dir",
        "path",
        "Directory where the lab caches what it generates (the sample federation); null: "
        "$XDG_CACHE_HOME/earthlab, else ~/.cache/earthlab.",
    ),
    Setting(
        "hub_dir",
        "path",
        "Run directory of `earthlab hub up|down|status` when --run-dir is not given; null: "
        "$XDG_STATE_HOME/earthlab/hub, else ~/.local/state/earthlab/hub.",
    ),
    Setting(
        "gateways",
        "gateways",
        "Dask Gateway of centres, by centre name: address (http(s) URL of its API) and "
        "proxy_address (gateway://host:port of its scheduler proxy), replacing the centres "
        "file's; the hub sets them for single-user servers.",
    ),
    Setting(
        "processes.url",
        "url",
        "The lab's processing service (OGC API - Processes) that lab.processes() and "
        "`earthlab process` use; null: none (the hub sets it for single-user servers).",
    ),
    Setting(
        "catalog.client_filter_max_items",
        "int",
        "Most items read from a STAC API to do client-side what it cannot: evaluate a CQL2 "
        "filter (no Filter conformance) or keep the first items of a limited search in "
        "datetime order (no Sort conformance, or sortby ignored); more is an error asking "
        "to narrow the search.",
        low=1,
        high=10_000_000,
    ),
    Setting(
        "http.timeout",
        "float",
        "Seconds an HTTP request waits for a connection or for the next bytes of an answer "
        "(STAC API searches use their centre's catalog.timeout).",
        low=0,
        high=3600,
        low_open=True,
    ),
    Setting(
        "http.retries",
        "int",
        "Further tries of an HTTP request that got no answer or one of http.retry_statuses "
        "(a centre's STAC API search is tried 1 + its catalog.retries times instead).",
        low=0,
        high=10,
    ),
    Setting(
        "http.backoff_factor",
        "float",
        "Wait before the n-th further try: backoff_factor * 2 ** (n - 1) seconds, none before "
        "the first (urllib3's rule).",
        low=0,
        high=60,
    ),
    Setting(
        "http.backoff_max",
        "float",
        "Longest wait between tries, in seconds; also caps a server's Retry-After.",
        low=0,
        high=600,
    ),
    Setting(
        "http.retry_statuses",
        "statuses",
        "HTTP statuses worth another try, among 408, 429, 502, 503, 504 (never another 4xx "
        "nor a plain 500).",
    ),
)


def _statuses(value: Any) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError("must be a list of HTTP statuses")
    if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ValueError("must be a list of HTTP statuses (integers)")
    wrong = sorted(set(value) - RETRYABLE_STATUSES)
    if wrong:
        raise ValueError(
            f"status(es) {', '.join(map(str, wrong))} may not be retried: only "
            f"{', '.join(map(str, sorted(RETRYABLE_STATUSES)))} (another 4xx means the request "
            "is wrong, a plain 500 that the server refuses it: another try gets the same answer)"
        )
    return tuple(sorted(set(value)))


def _url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value.strip()):
        raise ValueError("must be an http(s) URL (http://host:port/path) or null")
    return value.strip()


def _gateways(value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, Mapping):
        raise ValueError("must map centre names to {address, proxy_address}")
    out: dict[str, dict[str, str]] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not _CENTRE_NAME.match(name):
            raise ValueError(f"{name!r} is not a centre name (lower-case letters, digits, '-')")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{name} must be a mapping with address and/or proxy_address")
        unknown = sorted(set(entry) - set(_GATEWAY_FIELDS))
        if unknown:
            raise ValueError(
                f"{name}: unknown field(s) {', '.join(map(str, unknown))}; known: "
                + ", ".join(_GATEWAY_FIELDS)
            )
        fields: dict[str, str] = {}
        for field_name, text in entry.items():
            if text is None:
                continue
            if not isinstance(text, str) or not text:
                raise ValueError(f"{name}.{field_name} must be an address (text)")
            fields[field_name] = text
        address = fields.get("address")
        if address is not None and not address.startswith(("http://", "https://")):
            raise ValueError(f"{name}.address must be an http(s) URL, got {address!r}")
        out[name] = fields
    return out


# A layer: key -> (value, where it came from).
_Layer = dict[str, tuple[Any, str]]


class Config:
    """The lab's settings (the module attribute :data:`config`, ``lab.config``).

    Parameters
    ----------
    settings
        The registry of keys (default: :data:`SETTINGS`).
    """

    def __init__(self, settings: tuple[Setting, ...] = SETTINGS):
        self._settings = {s.key: s for s in settings}
        self._sections = {key.rsplit(".", 1)[0] for key in self._settings if "." in key}
        self._overrides: _Layer = {}
        self._lock = threading.Lock()
        self._files: dict[tuple[str, int, int], _Layer] = {}

    @property
    def settings(self) -> tuple[Setting, ...]:
        """The registry: every key, its type and meaning."""
        return tuple(self._settings.values())

    def get(self, key: str) -> Any:
        """Return the value of a key, or of every key of a section as a dict.

        Parameters
        ----------
        key
            A key (``"cache_dir"``, ``"http.retries"``) or a section (``"http"``).

        Returns
        -------
        Any
            The value of the last layer that sets it: paths are text (``~`` expanded) or
            None, ``gateways`` a dict of dicts, ``http.retry_statuses`` a tuple.

        Raises
        ------
        ConfigurationError
            If the key is unknown, or a layer is invalid (the message names the key and the
            file or variable).
        """
        values = self._resolve()
        if key in self._settings:
            return copy.deepcopy(values[key][0])
        if key in self._sections:
            prefix = key + "."
            return {
                k[len(prefix) :]: copy.deepcopy(v[0])
                for k, v in values.items()
                if k.startswith(prefix)
            }
        raise self._unknown(key, "lab.config.get")

    def origin(self, key: str) -> str:
        """Say where the value of a key comes from (defaults file, user file, variable, set).

        For ``gateways``, the last layer that set any of its entries.

        Raises
        ------
        ConfigurationError
            If the key is unknown, or a layer is invalid.
        """
        if key not in self._settings:
            raise self._unknown(key, "lab.config.origin")
        return self._resolve()[key][1]

    def set(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Override:
        """Set keys until the returned object is undone (end of a ``with`` block).

        Parameters
        ----------
        values
            Keys and values: ``{"http.retries": 0}`` or nested ``{"http": {"retries": 0}}``.
            A ``gateways`` mapping is merged into the current one, entry by entry.
        **kwargs
            More keys, ``__`` standing for ``.`` (``http__retries=0``).

        Returns
        -------
        Override
            Use it in a ``with`` block to restore the previous values at its end (or call its
            ``undo``); without ``with``, the values stay for the session.

        Raises
        ------
        ConfigurationError
            If a key is unknown or a value invalid (nothing is set then).
        """
        merged: dict[str, Any] = dict(values or {})
        merged.update({k.replace("__", "."): v for k, v in kwargs.items()})
        layer = self._flatten(merged, "lab.config.set", "")
        return Override(self, layer)

    def user_file(self) -> Path | None:
        """Return the user's configuration file, if there is one.

        Raises
        ------
        ConfigurationError
            If ``EARTHLAB_CONFIG`` names a file that does not exist.
        """
        named = os.environ.get(CONFIG_ENV)
        if named:
            path = Path(named).expanduser()
            if not path.is_file():
                raise ConfigurationError(
                    f"{CONFIG_ENV}={named}: no such file; create it (docs/configuration.md "
                    f"shows its layout) or unset {CONFIG_ENV}"
                )
            return path
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        path = Path(base).expanduser() / "earthlab" / "earthlab.yaml"
        return path if path.exists() else None

    def env_name(self, key: str) -> str:
        """Return the environment variable of a key (``cache_dir`` -> ``EARTHLAB_CACHE_DIR``).

        Raises
        ------
        ConfigurationError
            If the key is unknown, or is ``gateways`` (see :meth:`gateway_env_names`).
        """
        setting = self._settings.get(key)
        if setting is None or setting.kind == "gateways":
            raise self._unknown(key, "lab.config.env_name")
        return setting.env

    @staticmethod
    def gateway_env_names(centre: str) -> tuple[str, str]:
        """Return the variables of a centre's gateway address and proxy address.

        Returns
        -------
        tuple of str
            ``EARTHLAB_GATEWAY_<NAME>`` and ``EARTHLAB_GATEWAY_PROXY_<NAME>``, ``<NAME>`` the
            centre name upper-cased with ``-`` written ``_``.
        """
        key = centre.upper().replace("-", "_")
        return f"{GATEWAY_ENV}{key}", f"{GATEWAY_PROXY_ENV}{key}"

    def env_names(self) -> tuple[str, ...]:
        """Return every fixed variable the SDK reads (``EARTHLAB_CONFIG`` and one per key).

        The gateways' variables, one pair per centre, are not listed (see
        :meth:`gateway_env_names`).
        """
        return (CONFIG_ENV, *(s.env for s in self._settings.values() if s.kind != "gateways"))

    def __repr__(self) -> str:
        try:
            values = self._resolve()
        except ConfigurationError as exc:
            return f"<lab.config: invalid: {exc}>"
        lines = ["<lab.config"]
        lines += [f"  {k} = {v!r}  ({where})" for k, (v, where) in values.items()]
        return "\n".join(lines) + ">"

    # -- layers ---------------------------------------------------------------------------

    def _resolve(self) -> _Layer:
        layers = [self._defaults()]
        user = self.user_file()
        if user is not None:
            layers.append(self._file(user, "user file"))
        layers.append(self._environment())
        with self._lock:
            layers.append(dict(self._overrides))
        values: _Layer = {}
        for layer in layers:
            for key, (value, where) in layer.items():
                if self._settings[key].kind == "gateways" and key in values:
                    value = _merge_gateways(values[key][0], value)
                values[key] = (value, where)
        return values

    def _defaults(self) -> _Layer:
        from importlib.resources import files

        path = Path(str(files("lab").joinpath(DEFAULTS)))
        layer = self._file(path, "defaults file")
        missing = sorted(set(self._settings) - set(layer))
        if missing:
            raise ConfigurationError(
                f"the defaults file {path} lacks {', '.join(missing)}: the installation of "
                "earthlab is broken; reinstall it"
            )
        return layer

    def _file(self, path: Path, what: str) -> _Layer:
        try:
            stat = path.stat()
            cache_key = (str(path), stat.st_mtime_ns, stat.st_size)
            cached = self._files.get(cache_key)
            if cached is not None:
                return cached
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigurationError(
                f"cannot read the earthlab {what} {path}: {reason}; make it a readable "
                f"UTF-8 YAML file, or point {CONFIG_ENV} at another one"
            ) from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(
                f"the earthlab {what} {path} is not valid YAML: {exc}; fix it "
                "(docs/configuration.md shows its layout)"
            ) from None
        if document is None:
            document = {}
        if not isinstance(document, Mapping):
            raise ConfigurationError(
                f"the earthlab {what} {path} must be a mapping of settings (key: value), got "
                f"{type(document).__name__}; docs/configuration.md shows its layout"
            )
        layer = self._flatten(document, f"{what} {path}", "")
        kept = {k: v for k, v in self._files.items() if k[0] != str(path)}
        self._files = {**kept, cache_key: layer}  # the file's older versions are dropped
        return layer

    def _flatten(self, document: Mapping[str, Any], where: str, prefix: str) -> _Layer:
        out: _Layer = {}
        for raw, value in document.items():
            key = f"{prefix}{raw}"
            setting = self._settings.get(key)
            if setting is not None:
                try:
                    out[key] = (setting.check(value), where)
                except ValueError as exc:
                    got = "" if "got" in str(exc) else f", got {value!r}"
                    raise ConfigurationError(
                        f"{where}: {_say(key, exc)}{got}; see docs/configuration.md"
                    ) from None
            elif key in self._sections:
                if not isinstance(value, Mapping):
                    children = ", ".join(k for k in self._settings if k.startswith(key + "."))
                    raise ConfigurationError(
                        f"{where}: {key} is a section: give a mapping of {children}"
                    )
                out.update(self._flatten(value, where, key + "."))
            else:
                raise self._unknown(key, where)
        return out

    def _environment(self) -> _Layer:
        environ = dict(os.environ)
        out: _Layer = {}
        for setting in self._settings.values():
            if setting.kind == "gateways":
                continue
            text = environ.get(setting.env)
            if not text:
                continue
            try:
                out[setting.key] = (setting.parse_env(text), f"environment {setting.env}")
            except ValueError as exc:
                raise ConfigurationError(
                    f"environment variable {setting.env}={text!r}: {_say(setting.key, exc)}; "
                    "fix or unset it (docs/configuration.md)"
                ) from None
        gateways: dict[str, dict[str, str]] = {}
        names: list[str] = []
        for name, text in sorted(environ.items()):
            if not name.startswith(GATEWAY_ENV) or name in NOT_GATEWAYS or not text:
                continue
            if name.startswith(GATEWAY_PROXY_ENV):
                field_name, suffix = "proxy_address", name[len(GATEWAY_PROXY_ENV) :]
            else:
                field_name, suffix = "address", name[len(GATEWAY_ENV) :]
            centre = suffix.lower().replace("_", "-")
            try:
                entry = _gateways({centre: {field_name: text}})[centre]
            except ValueError as exc:
                raise ConfigurationError(
                    f"environment variable {name}={text!r}: {_say('gateways', exc)}; fix or unset it "
                    f"({GATEWAY_ENV}<NAME> is a centre's gateway address, "
                    f"{GATEWAY_PROXY_ENV}<NAME> its proxy address)"
                ) from None
            gateways.setdefault(centre, {}).update(entry)
            names.append(name)
        if gateways:
            out["gateways"] = (gateways, "environment " + ", ".join(names))
        self._warn_misspelt(environ)
        return out

    def _warn_misspelt(self, environ: Mapping[str, str]) -> None:
        """Warn once about an ``EARTHLAB_*`` variable that looks like a misspelt setting.

        Variables the SDK does not read are normal (the servers have their own), but one a
        letter away from a setting's (``EARTHLAB_CENTERS``) would be ignored silently: the lab
        would quietly use its sample federation instead of the user's centres file.
        """
        known = set(self.env_names())
        for name in environ:
            if not name.startswith(ENV_PREFIX) or name in known or name in _WARNED:
                continue
            if name in SERVER_ENV or name.startswith((GATEWAY_ENV, "EARTHLAB_TEST_")):
                continue
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.85)
            if close:
                _WARNED.add(name)
                warnings.warn(
                    f"the environment variable {name} is not a setting of the lab and is "
                    f"ignored; did you mean {close[0]}? (docs/configuration.md lists them)",
                    ConfigurationWarning,
                    stacklevel=_caller_level(),
                )

    def _unknown(self, key: str, where: str) -> ConfigurationError:
        close = [k for k in self._settings if k.split(".")[-1] == key.split(".")[-1]]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return ConfigurationError(
            f"{where}: unknown setting {key!r}{hint}; known settings: "
            f"{', '.join(self._settings)} (docs/configuration.md)"
        )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside ``lab``, so warnings point at user code."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "lab":
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def _say(key: str, exc: ValueError) -> str:
    """``key must be ...`` or ``key: what is wrong``."""
    text = str(exc)
    return f"{key} {text}" if text.startswith("must") else f"{key}: {text}"


def _merge_gateways(
    below: dict[str, dict[str, str]], above: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    merged = {name: dict(fields) for name, fields in below.items()}
    for name, fields in above.items():
        merged.setdefault(name, {}).update(fields)
    return merged


class Override:
    """Keys set by :meth:`Config.set`; undone at the end of a ``with`` block or by :meth:`undo`."""

    def __init__(self, config: Config, layer: _Layer):
        self._config = config
        self._done = False
        with config._lock:
            current = config._overrides
            self._previous: dict[str, tuple[Any, str] | None] = {
                key: current.get(key) for key in layer
            }
            for key, (value, where) in layer.items():
                if config._settings[key].kind == "gateways" and key in current:
                    value = _merge_gateways(current[key][0], value)
                current[key] = (value, where)

    def undo(self) -> None:
        """Restore the values these keys had before (once)."""
        if self._done:
            return
        self._done = True
        with self._config._lock:
            for key, previous in self._previous.items():
                if previous is None:
                    self._config._overrides.pop(key, None)
                else:
                    self._config._overrides[key] = previous

    def __enter__(self) -> Override:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.undo()


config = Config()
"""The lab's settings: ``lab.config.get("cache_dir")``, ``with lab.config.set(...)``."""


def cache_dir() -> Path:
    """Return the lab's cache directory (not created).

    Returns
    -------
    pathlib.Path
        The ``cache_dir`` setting if set, else ``$XDG_CACHE_HOME/earthlab``, else
        ``~/.cache/earthlab``; for root, ``/var/cache/earthlab`` (a lab started as root serves
        the sample federation to accounts that cannot enter root's home).
    """
    configured = config.get("cache_dir")
    if configured:
        return Path(configured)
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "earthlab"
    if os.geteuid() == 0:
        return Path("/var/cache/earthlab")
    return Path.home() / ".cache" / "earthlab"
