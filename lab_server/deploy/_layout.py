"""What a local deployment is: its ports, its run directory and its secrets.

The run directory holds everything one ``earthlab hub up`` made::

    RUN_DIR/
      lab.json           the Deployment (ports, paths); read by hub_config/*.py
      state.json         the processes started (pid, start time, command, log)
      secrets/           0700; one file per token, 0600, never printed
      logs/              one log per process
      hub/               JupyterHub's database
      users/<name>/      home directory of each single-user server (the lab's notebooks are
                         copied into its earthlab-notebooks/ at every start, missing files only)
      share/jupyter/     the Earth Analytics kernelspec the servers use
      gateways/<centre>/ working directories of that gateway's clusters
      centres.yaml       the centres file of the deployment (catalogues as STAC APIs)
      stac/<centre>/     the items (http asset hrefs) each centre's STAC API serves
      pgstac/pgdata/     the PostgreSQL cluster of `hub up --catalogue pgstac` (as root:
                         under the system's temporary directory, owned by ``postgres``)
      restricted/<centre>/usage.sqlite   usage of a restricted-data service (quotas)
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lab import ConfigurationError, config
from lab_server.deploy._catalogues import CatalogueServer, restricted_service_name
from lab_server.deploy._identity import AUTH_MODES
from lab_server.environment import HUB_RUN_DIR as RUN_MARKER

__all__ = [
    "Deployment",
    "GatewayPorts",
    "RunDir",
    "access_scope",
    "default_run_dir",
    "gateway_env_names",
    "hub_config_dir",
    "notebook_sources",
    "service_name",
]

LAB_JSON = "lab.json"
SECRET_NAMES = ("proxy-token", "admin-token", "cookie-secret", "password", "crypt-key")
PROCESSES_SERVICE = "processes"
RESULTS_CENTRE = "results"
"""The centre of users' centres file that searches their processing results."""
RESULTS_COLLECTION = "results"
"""Its collection (``lab_server.processes._stac.COLLECTION``: each user sees their own)."""
"""Hub service name of the processing service (``lab_server.processes``)."""
ADMIN_SERVICE = "earthlab-admin"
"""Hub service whose token (``secrets/admin-token``) administers users and servers."""


def service_name(centre: str) -> str:
    """Return the JupyterHub service name of a centre's gateway (``dask-gateway-<centre>``)."""
    return f"dask-gateway-{centre}"


def access_scope(centre: str) -> str:
    """Return the hub scope a token needs to use a centre's gateway."""
    return f"access:services!service={service_name(centre)}"


def gateway_env_names(centre: str) -> tuple[str, str]:
    """Return the environment variables telling the SDK where a centre's gateway is.

    Returns
    -------
    tuple of str
        ``EARTHLAB_GATEWAY_<NAME>`` (HTTP address) and ``EARTHLAB_GATEWAY_PROXY_<NAME>``
        (``gateway://host:port``), ``<NAME>`` upper-cased with ``-`` -> ``_``: the SDK's
        ``gateways`` setting (``lab.config``), as read by ``lab.centres()``.
    """
    return config.gateway_env_names(centre)


def notebook_sources() -> dict[str, Path]:
    """Return the lab's notebooks as shipped, for users' homes (``{sub-folder: directory}``).

    Returns
    -------
    dict of str to pathlib.Path
        ``notebooks`` and ``workshop``: the package data ``lab_server.notebooks`` (the
        repository's ``docs/notebooks`` and ``docs/workshop``, installed from a wheel or a
        checkout alike); a folder holding no notebook is left out.
    """
    docs = Path(str(resources.files("lab_server.notebooks"))).resolve()
    found = {sub: docs / sub for sub in ("notebooks", "workshop")}
    return {sub: path for sub, path in found.items() if any(path.glob("*.ipynb"))}


def default_run_dir() -> Path:
    """Return the run directory used when none is given.

    Returns
    -------
    pathlib.Path
        The ``hub_dir`` setting (``lab.config``, ``EARTHLAB_HUB_DIR``) if set, else
        ``$XDG_STATE_HOME/earthlab/hub`` (default ``~/.local/state/earthlab/hub``; for root,
        ``/var/lib/earthlab/hub``: isolated users' homes are under the run directory, and
        they cannot enter root's home).
    """
    configured = config.get("hub_dir")
    if configured:
        return Path(configured).expanduser().resolve()
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]).expanduser().resolve() / "earthlab" / "hub"
    if os.geteuid() == 0:
        return Path("/var/lib/earthlab/hub")
    return Path.home().resolve() / ".local" / "state" / "earthlab" / "hub"


def hub_config_dir() -> Path:
    """Return the directory of the hub and gateway configuration (``lab_server.hub_config``).

    In a source checkout this is the repository's ``hub_config/`` (also the npm prefix of
    configurable-http-proxy); in an installed wheel, the package data.

    Raises
    ------
    ConfigurationError
        If the configuration files are missing (a broken installation).
    """
    path = Path(str(resources.files("lab_server.hub_config"))).resolve()
    if not (path / "jupyterhub_config.py").is_file():
        raise ConfigurationError(
            f"jupyterhub_config.py not found in {path}: the installation of earthlab is "
            "incomplete; reinstall it (`pip install --force-reinstall 'earthlab[hub]'`)"
        )
    return path


@dataclass(frozen=True)
class GatewayPorts:
    """The four ports of one centre's Dask Gateway, all chosen by ``hub up`` before it starts."""

    centre: str
    """Centre name."""
    api_port: int
    """Private API server (the gateway's own process)."""
    http_port: int
    """The lab's dashboard front: API and dashboards, behind the hub's proxy."""
    tcp_port: int
    """The gateway's TLS scheduler proxy (``gateway://``), reached directly by clients."""
    proxy_port: int
    """The gateway's own HTTP proxy, private, behind the dashboard front."""

    @property
    def service(self) -> str:
        """JupyterHub service name."""
        return service_name(self.centre)


CATALOGUE_BACKENDS = ("memory", "pgstac")
"""Where ``hub up`` keeps the served centres' catalogues (``--catalogue``)."""


@dataclass(frozen=True)
class Deployment:
    """One local lab: where everything listens and which files it uses."""

    run_dir: str
    """Run directory (see the module docstring)."""
    port: int
    """Public port of the hub's proxy: the lab's URL."""
    proxy_api_port: int
    """configurable-http-proxy's REST API port."""
    hub_api_port: int
    """JupyterHub's own port (behind the proxy)."""
    gateways: tuple[GatewayPorts, ...]
    """One gateway per centre, in centres-file order."""
    centres_file: str
    """The centres file single-user servers use (their ``centres`` setting)."""
    hub_config: str
    """The ``hub_config/`` directory."""
    bin_dir: str
    """``bin`` directory of the Python environment every process runs from."""
    ip: str = "127.0.0.1"
    """Address everything listens at (loopback)."""
    kernel: str = "earth-analytics"
    """Default kernelspec of single-user servers."""
    cache_dir: str | None = None
    """The ``cache_dir`` setting of single-user servers and workers, if set."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for single-user servers (never secrets)."""
    catalogues: tuple[CatalogueServer, ...] = ()
    """The STAC API of each centre whose catalogue the lab serves (local files)."""
    front_port: int | None = None
    """Port of the HTTP front of the open centres: their STAC APIs (``/stac/<centre>/``) and
    files (``/assets/<centre>/``); none if every served centre is restricted."""
    source_centres_file: str | None = None
    """The centres file the deployment was made from (``centres_file`` is the lab's own)."""
    catalogue_backend: str = "memory"
    """Where the served centres' catalogues live: ``memory`` (``rustac serve``) or
    ``pgstac`` (PostgreSQL + pgstac, served by stac-fastapi-pgstac, as data centres run)."""
    pgstac_port: int | None = None
    """Port of the PostgreSQL server holding the catalogues (``catalogue_backend="pgstac"``)."""
    pgstac_data: str | None = None
    """Its data directory (``catalogue_backend="pgstac"``); removed by ``hub down``."""
    auth: str = "password"
    """How users log in: ``password`` or ``oidc`` (single sign-on, ``lab_server.deploy
    ._identity``)."""
    oidc_issuer: str | None = None
    """The OpenID provider's issuer URL (``auth="oidc"``)."""
    oidc_port: int | None = None
    """Port of the test provider the lab runs (``hub up --oidc-users``); None otherwise."""
    owner: str = ""
    """The person who ran ``hub up`` (its Unix account): with per-user passwords, the first
    account and the hub's admin; in a single-person lab (not started as root), the only hub
    user restricted collections are granted to."""
    processes_port: int | None = None
    """Port of the processing service (the hub service ``processes``, OGC API – Processes);
    None in labs started before it existed."""
    jobs_database: str | None = None
    """The PostgreSQL database of the processing service's jobs (``hub up --jobs-database``,
    without its password: the secret ``processes-db-password``); None: an SQLite file in the
    run directory (``processes/jobs.sqlite``)."""
    results_storage: dict[str, str] | None = None
    """Where the processing service keeps users' results (``hub up --results-storage CENTRE``:
    that centre's ``storage`` of the centres file, under ``results/``): ``url``, and
    ``endpoint_url`` and ``region`` when given; its credentials are the secrets
    ``processes-storage-key`` and ``processes-storage-secret``. None: the run directory."""
    user_python: str = ""
    """With isolated users (``hub up`` as root): the interpreter of the user
    environment their servers, kernels and Dask processes run; '' when users are not isolated."""

    @property
    def isolated(self) -> bool:
        """True when each user's processes run as their own Unix account."""
        return bool(self.user_python)

    @property
    def service_bin_dir(self) -> str:
        """Where the commands of the services that need no privilege are.

        The user environment's with isolated users (they run as the service account), else
        the lab's.
        """
        return str(Path(self.user_python).parent) if self.isolated else self.bin_dir

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ConfigurationError(
                f"auth must be one of {', '.join(AUTH_MODES)}, not {self.auth!r}"
            )
        if (self.auth == "oidc") != bool(self.oidc_issuer):
            raise ConfigurationError(
                "an OpenID issuer goes with auth 'oidc', and only with it: give --oidc-issuer "
                "URL or --oidc-users FILE with --auth oidc"
            )
        if self.catalogue_backend not in CATALOGUE_BACKENDS:
            raise ConfigurationError(
                f"catalogue back end must be one of {', '.join(CATALOGUE_BACKENDS)}, not "
                f"{self.catalogue_backend!r}"
            )

    @property
    def url(self) -> str:
        """The lab's URL."""
        return f"http://{self.ip}:{self.port}/"

    @property
    def hub_api_url(self) -> str:
        """JupyterHub's REST API, reached directly (not through the proxy)."""
        return f"http://{self.ip}:{self.hub_api_port}/hub/api"

    def gateway(self, centre: str) -> GatewayPorts:
        """Return the ports of a centre's gateway."""
        for g in self.gateways:
            if g.centre == centre:
                return g
        raise ConfigurationError(
            f"no gateway for centre {centre!r}; gateways: {', '.join(g.centre for g in self.gateways)}"
        )

    def gateway_address(self, centre: str) -> str:
        """HTTP address of a centre's gateway, through the hub's proxy."""
        return f"{self.url}services/{service_name(centre)}"

    @property
    def routed_services(self) -> tuple[str, ...]:
        """Names of the services the proxy routes at ``/services/<name>/``.

        The gateways, restricted-data services and the processing service: the hub adds their
        routes after its API answers.
        """
        processes = (PROCESSES_SERVICE,) if self.processes_port is not None else ()
        return (
            tuple(g.service for g in self.gateways)
            + tuple(s.service for s in self.catalogues if s.restricted)
            + processes
        )

    @property
    def processes_url(self) -> str:
        """The processing service's URL through the hub's proxy, ending in ``/``."""
        return f"{self.url}services/{PROCESSES_SERVICE}/"

    def gateway_proxy_address(self, centre: str) -> str:
        """``gateway://`` address of a centre's scheduler proxy."""
        return f"gateway://{self.ip}:{self.gateway(centre).tcp_port}"

    def catalogue(self, centre: str) -> CatalogueServer:
        """Return the STAC API server of a centre."""
        for server in self.catalogues:
            if server.centre == centre:
                return server
        raise ConfigurationError(
            f"the lab serves no catalogue for centre {centre!r}; served: "
            f"{', '.join(s.centre for s in self.catalogues) or 'none'}"
        )

    def catalogue_url(self, centre: str) -> str:
        """The STAC API root of a centre as clients use it (the restricted service's if any)."""
        server = self.catalogue(centre)
        if server.restricted:
            return self.restricted_service_url(centre) + "stac/"
        return f"http://{self.ip}:{self.front_port}/stac/{centre}/"

    def restricted_service_url(self, centre: str) -> str:
        """URL of a centre's restricted-data service, through the hub's proxy."""
        return f"{self.url}services/{restricted_service_name(centre)}/"

    def asset_base(self, centre: str) -> str:
        """URL prefix of a served centre's asset files."""
        if self.catalogue(centre).restricted:
            return self.restricted_service_url(centre) + "assets/"
        return f"http://{self.ip}:{self.front_port}/assets/{centre}/"

    def user_environment(self) -> dict[str, str]:
        """Environment of single-user servers: where the centres file and gateways are."""
        env = {config.env_name("centres"): self.centres_file, **self.extra_env}
        # marks the servers and their kernels as the run's: `hub down` finds them by it even
        # when the hub that started them was killed
        env[RUN_MARKER] = self.run_dir
        if self.cache_dir:
            env[config.env_name("cache_dir")] = self.cache_dir
        for g in self.gateways:
            address_var, proxy_var = gateway_env_names(g.centre)
            env[address_var] = self.gateway_address(g.centre)
            env[proxy_var] = self.gateway_proxy_address(g.centre)
        if self.processes_port is not None:  # lab.processes() with no argument
            env[config.env_name("processes.url")] = self.processes_url
        return env

    def to_json(self) -> str:
        """Serialise (for ``lab.json``)."""
        return json.dumps({"version": 1, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        """Read what :meth:`to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        data.pop("version", None)
        data["gateways"] = tuple(GatewayPorts(**g) for g in data["gateways"])
        data["catalogues"] = tuple(CatalogueServer(**s) for s in data.get("catalogues", ()))
        return cls(**data)


class RunDir:
    """The files of one local deployment (see the module docstring).

    Parameters
    ----------
    path
        The run directory.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser().resolve()

    lab_json = property(lambda self: self.path / LAB_JSON)
    state_json = property(lambda self: self.path / "state.json")
    secrets_dir = property(lambda self: self.path / "secrets")
    logs_dir = property(lambda self: self.path / "logs")
    policy_file = property(lambda self: self.path / "policy.yaml")
    """The policy (limits, cluster options, quotas) the lab was started with: every server,
    and every restart of one, reads this copy, whatever the caller's environment says."""

    def create(self) -> None:
        """Create the directory tree; ``secrets/`` is private to the current user."""
        for sub in ("logs", "hub", "users", "share", "gateways", "stac", "restricted"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)

    def secret_path(self, name: str) -> Path:
        """Path of a secret file (``proxy-token``, ``gateway-<centre>-token``...)."""
        return self.secrets_dir / name

    def secret(self, name: str) -> str:
        """Read a secret written by :meth:`new_secret`."""
        path = self.secret_path(name)
        try:
            return path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise ConfigurationError(
                f"secret {path} is missing: start the lab with `earthlab hub up`"
            ) from None

    def new_secret(self, name: str, nbytes: int = 32) -> str:
        """Generate a random hex secret into ``secrets/<name>`` (mode 0600) and return it."""
        return self.write_secret(name, secrets.token_hex(nbytes))

    def write_secret(self, name: str, value: str) -> str:
        """Keep a given secret in ``secrets/<name>`` (mode 0600) and return it."""
        if "\n" in value or not value:
            raise ConfigurationError(f"secret {name} must be one non-empty line")
        path = self.secret_path(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
        return value

    def write_deployment(self, deployment: Deployment) -> None:
        """Write ``lab.json``."""
        self.lab_json.write_text(deployment.to_json() + "\n", encoding="utf-8")

    def deployment(self) -> Deployment:
        """Read ``lab.json``.

        Raises
        ------
        ConfigurationError
            If the directory holds no deployment.
        """
        if not self.lab_json.is_file():
            raise ConfigurationError(
                f"no lab deployment in {self.path}: start one with `earthlab hub up` "
                "(or pass the --run-dir it used)"
            )
        return Deployment.from_json(self.lab_json.read_text(encoding="utf-8"))


def current_bin_dir() -> str:
    """``bin`` directory of the running Python environment."""
    return str(Path(sys.executable).parent)
