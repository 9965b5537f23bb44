"""``up``, ``down`` and ``status`` of the local lab (``earthlab hub ...`` and the e2e fixture).

Start order: configurable-http-proxy; each served centre's STAC API (``rustac serve``, on a
private port; with ``catalogue_backend="pgstac"`` PostgreSQL first, loaded with every centre's
items, then one stac-fastapi-pgstac per centre), the HTTP front of the open centres (their STAC APIs and files) and the
restricted-data service of each centre with restricted collections; one dask-gateway-server per centre; then JupyterHub (which registers
its routes with the running proxy, and the gateways and restricted-data services as its
services). Stop order is the reverse: the hub first, so that stopping single-user servers can
still stop their clusters on the gateways.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
import yaml

from lab import ConfigurationError
from lab import config as lab_config
from lab_server.deploy._accounts import keep_owner_account, owner_name
from lab_server.deploy._catalogues import (
    TOKEN_ENV,
    CatalogueServer,
    centre_root,
    prepare_catalogue,
    rustac_command,
    served_locally,
    write_centres_file,
)
from lab_server.deploy._identity import (
    AUTH_MODES,
    discovery_url,
    provider_command,
    read_oidc_users,
)
from lab_server.deploy._isolation import (
    SERVICE_ACCOUNT,
    check_homes_reachable,
    check_private,
    check_services_reach,
    close_ports,
    ensure_service_account,
    give_to_services,
    make_user_env,
    open_ports,
    resolve_isolation,
    restrict_run_dir,
)
from lab_server.deploy._kernels import DEFAULT_KERNEL, install_kernel
from lab_server.deploy._layout import (
    CATALOGUE_BACKENDS,
    PROCESSES_SERVICE,
    RESULTS_CENTRE,
    RESULTS_COLLECTION,
    SECRET_NAMES,
    Deployment,
    GatewayPorts,
    RunDir,
    current_bin_dir,
    default_run_dir,
    hub_config_dir,
    service_name,
)
from lab_server.deploy._pgstac import PgstacCluster, api_command, find_postgres, served_documents
from lab_server.deploy._procs import (
    Proc,
    end_processes,
    ensure_alive,
    free_port,
    http_ready,
    port_free,
    run_processes,
    start,
    stop,
    stop_all,
    wait_until,
)
from lab_server.deploy._proxy import find_proxy
from lab_server.environment import GATEWAY_CENTRE, HUB_RUN_DIR, POLICY_FILE

__all__ = ["down", "restart", "status", "up"]

RUN_DIR_VAR = HUB_RUN_DIR
"""Tells ``hub_config/*.py`` which run directory (``lab.json``, ``secrets/``) to read."""
CENTRE_VAR = GATEWAY_CENTRE
"""Tells ``hub_config/dask_gateway_config.py`` which centre's gateway it configures."""


def up(
    centres_file: str | os.PathLike[str] | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    port: int = 8000,
    timeout: float = 90.0,
    extra_env: dict[str, str] | None = None,
    catalogue: str = "memory",
    auth: str = "password",
    oidc_issuer: str | None = None,
    oidc_users: str | os.PathLike[str] | None = None,
    isolate_users: bool | None = None,
    jobs_database: str | None = None,
    results_storage: str | None = None,
) -> Deployment:
    """Start the local lab: proxy, one gateway per centre, JupyterHub.

    Parameters
    ----------
    centres_file
        Centres file (default: ``$EARTHLAB_CENTRES`` or the embedded sample federation). Each
        centre gets a gateway, and each centre whose catalogue is a local file a STAC API
        (``rustac serve``); single-user servers get the lab's own centres file, where those
        catalogues are STAC API URLs, and the gateways' addresses.
    run_dir
        Run directory (default: :func:`default_run_dir`).
    port
        Public port of the lab (0: any free port).
    timeout
        Seconds each server may take to become ready.
    extra_env
        More environment for single-user servers (never secrets).
    catalogue
        Where the served centres' catalogues live: ``"memory"`` (``rustac serve``) or
        ``"pgstac"`` (one PostgreSQL + PostGIS + pgstac server, a database per centre, each
        served by stac-fastapi-pgstac, as data centres run them; needs the Debian packages
        ``postgresql`` and ``postgresql-15-postgis-3``). Same centres file, same front and
        restricted-data services either way.

    auth
        How users log in: ``"password"`` or ``"oidc"`` (single sign-on with OpenID Connect,
        mapped by ``auth.oidc`` of the policy: groups, admins and restricted groups from the
        provider's claims).
    oidc_issuer
        With ``auth="oidc"``: the issuer URL of the identity provider; the hub's client secret
        is read from the environment variable ``auth.oidc.client_secret_env`` names.
    oidc_users
        With ``auth="oidc"`` instead of ``oidc_issuer``: a users file (``users:``, claims with
        ``sub``) seeding a test provider the lab runs on loopback (oidc-provider-mock; for
        tests and rehearsals: anyone reaching it may sign in as a seeded user).
    isolate_users
        Run each user's server, kernels, schedulers and workers as the user's own Unix
        account, with a private home (see ``lab_server.deploy._isolation``). ``None`` (the
        default) means: when this process runs as root. Root always isolates (``False`` as
        root is refused: every user would get root's files); ``True`` needs root.
    jobs_database
        A PostgreSQL database for the processing service's jobs and subscriptions,
        ``postgresql://user@host:port/database`` (its password in the environment variable
        ``EARTHLAB_JOBS_DATABASE_PASSWORD``, kept among the run directory's secrets for the
        service only). Checked, and its tables created, before anything starts. Default: an
        SQLite file in the run directory.
    results_storage
        The name of a centre of the centres file whose ``storage`` (object storage) keeps
        users' processing results, under ``results/<user>/``; its credentials are read from
        the environment variables the storage names, and kept among the run directory's
        secrets for the service only (users read results through the service). Default: the
        run directory.

    Returns
    -------
    Deployment
        Where everything listens.

    Raises
    ------
    ConfigurationError
        If a lab already runs from ``run_dir``, a port is taken, the proxy is not installed or
        a server fails to start (the message quotes its log; everything started is stopped),
        or ``catalogue`` is unknown or its system packages are missing (they are named).
    """
    from lab import centres

    if catalogue not in CATALOGUE_BACKENDS:
        raise ConfigurationError(
            f"catalogue must be one of {', '.join(CATALOGUE_BACKENDS)}, not {catalogue!r}"
        )
    if catalogue == "pgstac":
        find_postgres()  # before anything starts: names the packages to install
    if auth not in AUTH_MODES:
        raise ConfigurationError(f"auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
    if auth == "oidc" and bool(oidc_issuer) == bool(oidc_users):
        raise ConfigurationError(
            "--auth oidc needs one of --oidc-issuer URL (your identity provider) or "
            "--oidc-users FILE (a test provider on loopback seeded from FILE)"
        )
    if auth != "oidc" and (oidc_issuer or oidc_users):
        raise ConfigurationError("--oidc-issuer and --oidc-users go with --auth oidc")
    isolate_users = resolve_isolation(isolate_users)
    database_password = _check_jobs_database(jobs_database)
    provider_users = read_oidc_users(oidc_users) if oidc_users else None
    oidc_port = free_port() if provider_users else None

    run = RunDir(run_dir or default_run_dir())
    if isolate_users:
        check_homes_reachable(run.path)
    running = [p.name for p in _procs(run) if p.alive()]
    if running:
        raise ConfigurationError(
            f"a lab already runs from {run.path} ({', '.join(running)}); "
            "stop it with `earthlab hub down` or give another --run-dir"
        )
    centre_set = centres(centres_file)
    storage, storage_secrets = _results_storage(centre_set, results_storage)
    config = hub_config_dir()
    chp = find_proxy()
    if port and not port_free(port):
        raise ConfigurationError(f"port {port} is taken: pass another --port, or 0 for any")
    served = [c for c in centre_set.values() if served_locally(c)]
    catalogues = tuple(
        CatalogueServer(c.name, free_port(), free_port() if c.restricted else None) for c in served
    )
    deployment = Deployment(
        run_dir=str(run.path),
        port=port or free_port(),
        proxy_api_port=free_port(),
        hub_api_port=free_port(),
        gateways=tuple(
            GatewayPorts(name, free_port(), free_port(), free_port(), free_port())
            for name in centre_set
        ),
        centres_file=str(run.path / "centres.yaml"),
        source_centres_file=str(centre_set.source),
        catalogues=catalogues,
        front_port=free_port() if any(not s.restricted for s in catalogues) else None,
        processes_port=free_port(),
        hub_config=str(config),
        bin_dir=current_bin_dir(),
        kernel=DEFAULT_KERNEL,
        cache_dir=lab_config.get("cache_dir"),
        extra_env=dict(extra_env or {}),
        catalogue_backend=catalogue,
        pgstac_port=free_port() if catalogue == "pgstac" and catalogues else None,
        auth=auth,
        oidc_issuer=(oidc_issuer or f"http://127.0.0.1:{oidc_port}").rstrip("/")
        if auth == "oidc"
        else None,
        oidc_port=oidc_port,
        # with passwords, the first account and the hub's admin; in a single-person lab (not
        # root), also the only one restricted collections are granted to, whatever the groups
        owner=owner_name() if auth == "password" or not isolate_users else "",
        jobs_database=jobs_database,
        results_storage=storage,
    )
    run.create()
    if isolate_users:
        deployment = replace(deployment, user_python=str(make_user_env(run.path)))
    _keep_policy(run, config)
    if auth == "oidc":
        _keep_client_secret(run, bool(provider_users))
    if deployment.pgstac_port is not None:
        cluster = PgstacCluster.create(
            run.path / "pgstac",
            deployment.pgstac_port,
            deployment.ip,
            password=run.new_secret(PGSTAC_SECRET),
        )
        deployment = replace(deployment, pgstac_data=cluster.data_dir)
    for name in SECRET_NAMES:
        run.new_secret(name, 8 if name == "password" else 32)
    for g in deployment.gateways:
        run.new_secret(f"{g.service}-token")
    run.new_secret(f"{PROCESSES_SERVICE}-token")
    if database_password:
        run.write_secret(JOBS_DATABASE_SECRET, database_password)
    for name, value in storage_secrets.items():
        run.write_secret(name, value)
    (run.path / "processes").mkdir(exist_ok=True)
    for server in catalogues:
        if server.restricted:
            run.new_secret(f"{server.service}-token")
            run.new_secret(f"{server.service}-key")
    if auth == "password":
        keep_owner_account(run, deployment.owner, run.secret("password"))
    run.write_deployment(deployment)
    _write_catalogues(run, deployment, centre_set)
    if deployment.isolated:
        ensure_service_account()
        for server in catalogues:
            root = Path(_served(run, server)["root"])
            if server.restricted:
                what = f"the restricted files of centre {server.centre!r}"
                check_private(root, what)
                check_services_reach(root.parent, what)
                give_to_services(root, what)
            else:
                check_services_reach(root, f"the files of centre {server.centre!r}")
    if provider_users:
        (run.path / "oidc-users.json").write_text(json.dumps(provider_users), encoding="utf-8")
    install_kernel(  # JUPYTER_PATH: hub
        deployment.kernel,
        prefix=str(run.path),
        python=deployment.user_python or None,
        quiet=True,
    )
    if deployment.isolated:
        restrict_run_dir(
            run.path,
            [
                f"{PROCESSES_SERVICE}-token",
                *([JOBS_DATABASE_SECRET] if database_password else []),
                *storage_secrets,
                *(
                    f"{s.service}-{kind}"
                    for s in catalogues
                    if s.restricted
                    for kind in ("token", "key")
                ),
            ],
        )
    if deployment.isolated:  # private ports closed to users' processes (kernel firewall)
        close_ports(run.path, _private_ports(deployment))
    started: list[Proc] = []
    try:
        _start_all(run, deployment, chp, started, timeout)
    except BaseException:
        for proc in reversed(started):
            stop(proc)
        _write_state(run, [])
        _remove_pgstac(deployment)
        open_ports(run.path)
        raise
    return deployment


def _private_ports(d: Deployment) -> list[int]:
    """Ports users' processes must not reach.

    Every centre's own catalogue server (no authentication: users go through the STAC front,
    which serves the open centres' public collections, and through the restricted-data
    service, which checks the group and the quota), the pgstac database, and the test identity
    provider (its ``/users`` API changes anyone's claims: a notebook could make its own user a
    DINAMIS member; the hub, root's, still reaches it, and so do browsers, which do not run as
    lab users).
    """
    ports = [s.port for s in d.catalogues]
    ports += [d.pgstac_port] if d.pgstac_port is not None else []
    return ports + ([d.oidc_port] if d.oidc_port is not None else [])


def _start_all(run: RunDir, d: Deployment, chp: Path, started: list[Proc], timeout: float) -> None:
    env = _base_env(d)
    proxy_env = {**env, "CONFIGPROXY_AUTH_TOKEN": run.secret("proxy-token")}
    hub_target = f"http://{d.ip}:{d.hub_api_port}"
    proxy = start(
        "proxy",
        [
            "node",
            str(chp),
            "--ip",
            d.ip,
            "--port",
            str(d.port),
            "--api-ip",
            d.ip,
            "--api-port",
            str(d.proxy_api_port),
            "--default-target",
            hub_target,
            "--error-target",
            f"{hub_target}/hub/error",
            "--log-level",
            "warn",
        ],
        run.logs_dir / "proxy.log",
        proxy_env,
        run.path,
        url=d.url,
    )
    started.append(proxy)
    _write_state(run, started)
    token = {"Authorization": f"token {run.secret('proxy-token')}"}
    wait_until(proxy, http_ready(f"http://{d.ip}:{d.proxy_api_port}/api/routes", token), timeout)
    if d.oidc_port is not None and d.oidc_issuer:
        _start_test_provider(run, d, env, started, timeout)
    _start_catalogues(run, d, env, started, timeout)

    gateways = []
    for g in d.gateways:
        proc = start(
            f"gateway-{g.centre}",
            [
                str(Path(d.bin_dir) / "dask-gateway-server"),
                "-f",
                str(Path(d.hub_config) / "dask_gateway_config.py"),
            ],
            run.logs_dir / f"{g.service}.log",
            {**env, CENTRE_VAR: g.centre},
            run.path / "gateways",
            url=d.gateway_address(g.centre),
        )
        started.append(proc)
        gateways.append((proc, g))
    _write_state(run, started)
    for proc, g in gateways:
        health = f"http://{d.ip}:{g.http_port}/services/{service_name(g.centre)}/api/health"
        wait_until(proc, http_ready(health), timeout)

    hub = start(
        "hub",
        [
            str(Path(d.bin_dir) / "jupyterhub"),
            "-f",
            str(Path(d.hub_config) / "jupyterhub_config.py"),
        ],
        run.logs_dir / "jupyterhub.log",
        # the key encrypting users' tokens from the identity provider (auth state)
        {**env, "JUPYTERHUB_CRYPT_KEY": run.secret("crypt-key")},
        run.path / "hub",
        url=d.url,
    )
    started.append(hub)
    _write_state(run, started)
    wait_until(hub, _hub_ready(d), timeout)
    # the proxy's default target is the hub, so /hub/api answers before the hub has added the
    # services' routes: until then /services/... reaches the hub (a 403 on POST, a 404 on GET)
    wait_until(hub, _routes_ready(d, token), timeout)
    ensure_alive(started)


def _start_test_provider(
    run: RunDir, d: Deployment, env: dict[str, str], started: list[Proc], timeout: float
) -> None:
    """Start the test OpenID provider seeded with the users file (``hub up --oidc-users``)."""
    users = json.loads((run.path / "oidc-users.json").read_text(encoding="utf-8"))
    assert d.oidc_port is not None and d.oidc_issuer
    provider = _start_service(
        run,
        d,
        "oidc-provider",
        provider_command(d.service_bin_dir, d.ip, d.oidc_port, users),
        "oidc-provider.log",
        env,
        d.oidc_issuer + "/",
    )
    started.append(provider)
    _write_state(run, started)
    wait_until(provider, http_ready(discovery_url(d.oidc_issuer)), timeout)


def _write_catalogues(run: RunDir, d: Deployment, centre_set: Any) -> None:
    """Write what each STAC API serves and the lab's centres file pointing at them."""
    catalogs = {}
    for server in d.catalogues:
        source = centre_set[server.centre]
        directory = run.path / "stac" / server.centre
        files = prepare_catalogue(source, directory, d.asset_base(source.name))
        served = {
            "files": files,
            "root": str(centre_root(source).resolve()),
            # what the restricted-data service needs of the centre, which it may not read
            # from the operator's centres file (the service account's view of the disk)
            "restricted": dict(source.restricted),
            "access_url": source.access_url,
        }
        (directory / "served.json").write_text(json.dumps(served), encoding="utf-8")
        catalog: dict[str, Any] = {
            "kind": "stac-api",
            "href": d.catalogue_url(server.centre),
            "timeout": source.catalog.timeout,
            "retries": source.catalog.retries,
        }
        if server.restricted:
            catalog["token_env"] = TOKEN_ENV
        catalogs[server.centre] = catalog
    extra = []
    if d.processes_port is not None:  # each user's processing results, searched as a centre
        extra.append(
            {
                "name": RESULTS_CENTRE,
                "title": "Your processing results (Earth Analytics Lab)",
                "description": "The outputs of your jobs of the lab's processing service, "
                "one STAC Item per job (yours only)",
                "collections": [RESULTS_COLLECTION],
                "catalog": {
                    "kind": "stac-api",
                    "href": d.processes_url + "stac/",
                    "token_env": TOKEN_ENV,
                },
            }
        )
    write_centres_file(Path(d.centres_file), centre_set, catalogs, extra)


JOBS_DATABASE_PASSWORD = "EARTHLAB_JOBS_DATABASE_PASSWORD"
"""The variable holding the password of ``hub up --jobs-database`` (operators set it; ``hub up``
keeps it among the run directory's secrets for the service, never in ``lab.json``)."""
JOBS_DATABASE_SECRET = "processes-db-password"
"""The secret holding the password of ``hub up --jobs-database`` (the service reads it)."""


def _check_jobs_database(url: str | None) -> str:
    """Check the job database ``hub up --jobs-database`` names; its password ('' for none).

    Raises
    ------
    ConfigurationError
        The URL holds a password or lacks a database, or the server refuses (its message).
    """
    if url is None:
        return ""
    from lab_server.processes._database import JobDatabase
    from lab_server.processes._store import JobStore

    database = JobDatabase(url, os.environ.get(JOBS_DATABASE_PASSWORD, ""))
    if not database.is_postgresql:
        raise ConfigurationError(
            f"--jobs-database takes a PostgreSQL URL (postgresql://user@host:port/database), "
            f"not {url!r}; without it the jobs are kept in the run directory (SQLite)"
        )
    JobStore(database)  # reachable, and its tables made, before anything starts
    return database.password


STORAGE_SECRETS = ("processes-storage-key", "processes-storage-secret")
"""The secrets holding the credentials of ``hub up --results-storage`` (the service's)."""


def _results_storage(
    centre_set: Any, name: str | None
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """What ``hub up --results-storage CENTRE`` records (no secret), and its secrets.

    Raises
    ------
    ConfigurationError
        No such centre, it has no object storage, or its credentials are not exported.
    """
    if name is None:
        return None, {}
    if name not in centre_set:
        raise ConfigurationError(
            f"--results-storage names no centre of the centres file: {name!r} (centres: "
            f"{', '.join(centre_set)})"
        )
    spec = centre_set[name].storage
    if spec is None or not spec.url.startswith("s3://"):
        raise ConfigurationError(
            f"centre {name!r} has no object storage (storage.url s3://...) to keep results "
            "in: give it one in the centres file, or leave --results-storage out (results stay "
            "in the run directory)"
        )
    options = spec.storage_options()  # the credentials, from the environment now
    storage = {"url": spec.url.rstrip("/") + "/results"}
    client = options.get("client_kwargs", {})
    if "endpoint_url" in client:
        storage["endpoint_url"] = client["endpoint_url"]
    if "region_name" in client:
        storage["region"] = client["region_name"]
    secrets_ = {
        secret: options[key]
        for secret, key in zip(STORAGE_SECRETS, ("key", "secret"), strict=True)
        if key in options
    }
    return storage, secrets_


def results_storage_options(run: RunDir, storage: dict[str, str]) -> dict[str, Any]:
    """The fsspec options of the results storage, with its credentials (for the service)."""
    options: dict[str, Any] = {}
    client = {
        key: storage[field_]
        for key, field_ in (("endpoint_url", "endpoint_url"), ("region_name", "region"))
        if field_ in storage
    }
    if client:
        options["client_kwargs"] = client
    for secret, key in zip(STORAGE_SECRETS, ("key", "secret"), strict=True):
        if run.secret_path(secret).is_file():
            options[key] = run.secret(secret)
    return options


PGSTAC_SECRET = "pgstac-password"
"""The secret holding the password of a ``pgstac`` deployment's PostgreSQL superuser."""


def _cluster(d: Deployment) -> PgstacCluster | None:
    """The PostgreSQL server of a ``pgstac`` deployment (None with ``memory``)."""
    if d.pgstac_port is None or d.pgstac_data is None:
        return None
    password = RunDir(d.run_dir).secret(PGSTAC_SECRET)
    return PgstacCluster(d.pgstac_data, d.pgstac_port, str(find_postgres()), password, d.ip)


def _start_service(
    run: RunDir,
    d: Deployment,
    name: str,
    command: list[str],
    log: str,
    env: dict[str, str],
    url: str,
) -> Proc:
    """Start one of the services that need no privilege.

    Catalogue servers, the STAC front, the restricted-data and processing services, the test
    identity provider. When users are isolated (the lab runs as root) it runs as the service account, from the
    user environment's commands, with ``<run>/services`` as its home and working directory;
    otherwise as the lab's own account, in the run directory.
    """
    if not d.isolated:
        return start(name, command, run.logs_dir / log, env, run.path, url=url)
    home = run.path / "services"
    env = {
        **env,
        "HOME": str(home),
        "PATH": os.pathsep.join([d.service_bin_dir, env.get("PATH", "/usr/bin:/bin")]),
    }
    return start(name, command, run.logs_dir / log, env, home, url=url, account=SERVICE_ACCOUNT)


def _server_env(d: Deployment, name: str, env: dict[str, str]) -> dict[str, str]:
    """The environment of one catalogue-side server.

    A pgstac API gets the database password; the processing service, the users' view of the
    lab (centres file, gateways).
    """
    if name == PROCESSES_SERVICE:
        return {**env, **d.user_environment()}
    cluster = _cluster(d) if name.startswith("stac-") else None
    return {**env, **cluster.client_env()} if cluster is not None else env


def _remove_pgstac(d: Deployment) -> None:
    cluster = _cluster(d) if d.pgstac_data and Path(d.pgstac_data).exists() else None
    if cluster is not None:
        cluster.remove()


def _catalogue_commands(run: RunDir, d: Deployment) -> list[tuple[str, list[str], str, str]]:
    """(name, command, log name, readiness URL) of every catalogue-side server, in start order.

    With pgstac, the PostgreSQL server itself is not one of them: :func:`_start_pgstac`
    starts it before them.
    """
    commands = []
    python = str(Path(d.service_bin_dir) / "python")
    cluster = _cluster(d)
    for server in d.catalogues:
        if cluster is not None:
            database = _served(run, server)["database"]
            command = api_command(python, cluster, database, d.ip, server.port)
        else:
            command = rustac_command(
                d.service_bin_dir, _served(run, server)["files"], d.ip, server.port
            )
        commands.append(
            (
                f"stac-{server.centre}",
                command,
                f"stac-{server.centre}.log",
                f"http://{d.ip}:{server.port}/",
            )
        )
    if d.front_port is not None:
        config = {
            "ip": d.ip,
            "port": d.front_port,
            "centres": {
                s.centre: {"stac": f"http://{d.ip}:{s.port}/", "files": _served(run, s)["root"]}
                for s in d.catalogues
                if not s.restricted
            },
        }
        (run.path / "stac" / "front.json").write_text(json.dumps(config), encoding="utf-8")
        commands.append(
            (
                "front",
                [python, "-m", "lab_server.stac_front", str(run.path / "stac" / "front.json")],
                "front.log",
                f"http://{d.ip}:{d.front_port}/health",
            )
        )
    for server in d.catalogues:
        if server.restricted:
            commands.append(
                (
                    server.service,
                    [python, "-m", "lab_server.restricted", server.centre],
                    f"{server.service}.log",
                    f"http://{d.ip}:{server.service_port}/services/{server.service}/health",
                )
            )
    if d.processes_port is not None:
        commands.append(
            (
                PROCESSES_SERVICE,
                [python, "-m", "lab_server.processes"],
                f"{PROCESSES_SERVICE}.log",
                f"http://{d.ip}:{d.processes_port}/services/{PROCESSES_SERVICE}/health",
            )
        )
    return commands


def _served(run: RunDir, server: CatalogueServer) -> dict[str, Any]:
    path = run.path / "stac" / server.centre / "served.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _start_pgstac(run: RunDir, d: Deployment, started: list[Proc], timeout: float) -> None:
    """Start PostgreSQL, migrate pgstac and load every served centre into its own database."""
    cluster = _cluster(d)
    if cluster is None:
        return
    cluster.init()
    proc = start(
        "postgres",
        cluster.server_command(),
        run.logs_dir / "postgres.log",
        cluster.server_env(),
        Path(cluster.data_dir).parent,
        url=f"postgresql://{d.ip}:{cluster.port}/",
    )
    started.append(proc)
    _write_state(run, started)
    wait_until(proc, cluster.ready(), timeout)
    cluster.migrate_template()
    for server in d.catalogues:
        served = _served(run, server)
        database = cluster.prepare(server.centre)
        cluster.load(database, *served_documents(served["files"]))
        served["database"] = database
        path = run.path / "stac" / server.centre / "served.json"
        path.write_text(json.dumps(served), encoding="utf-8")


def _start_catalogues(
    run: RunDir, d: Deployment, env: dict[str, str], started: list[Proc], timeout: float
) -> None:
    _start_pgstac(run, d, started, timeout)
    waiting = []
    for name, command, log, ready_url in _catalogue_commands(run, d):
        proc = _start_service(run, d, name, command, log, _server_env(d, name, env), ready_url)
        started.append(proc)
        waiting.append((proc, ready_url))
    _write_state(run, started)
    for proc, ready_url in waiting:
        wait_until(proc, http_ready(ready_url), timeout)


def restart(
    name: str, run_dir: str | os.PathLike[str] | None = None, timeout: float = 30.0
) -> Proc:
    """Stop one catalogue-side server of a running lab and start it again, same command.

    Parameters
    ----------
    name
        ``stac-<centre>``, ``front`` or ``restricted-<centre>`` (see ``earthlab hub status``).
    run_dir
        Run directory (default: :func:`default_run_dir`).
    timeout
        Seconds it may take to stop, then to become ready again.

    Returns
    -------
    Proc
        The new process.

    Raises
    ------
    ConfigurationError
        If no such server belongs to the lab, or it does not come back.
    """
    run = RunDir(run_dir or default_run_dir())
    d = run.deployment()
    commands = {c[0]: c for c in _catalogue_commands(run, d)}
    if name not in commands:
        raise ConfigurationError(
            f"{name!r} is not a catalogue server of the lab in {run.path}; "
            f"restartable: {', '.join(commands) or 'none'}"
        )
    procs = _procs(run)
    for proc in procs:
        if proc.name == name:
            stop(proc, timeout)
    _, command, log, ready_url = commands[name]
    new = _start_service(run, d, name, command, log, _server_env(d, name, _base_env(d)), ready_url)
    _write_state(run, [new if p.name == name else p for p in procs])
    wait_until(new, http_ready(ready_url), timeout)
    return new


def _hub_ready(d: Deployment) -> Any:
    # through the proxy: the hub's route is in place, not the proxy's error page
    return http_ready(f"{d.url}hub/api/", accept=lambda response: "version" in response.json())


def _routes_ready(d: Deployment, proxy_auth: Mapping[str, str]) -> Any:
    """A check that the proxy routes every service of the lab (the hub adds them after start)."""
    wanted = {f"/services/{name}" for name in d.routed_services}

    def routed(response: requests.Response) -> bool:
        return wanted <= {path.rstrip("/") for path in response.json()}

    return http_ready(f"http://{d.ip}:{d.proxy_api_port}/api/routes", proxy_auth, routed)


def _base_env(d: Deployment) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # the caller's gateways (EARTHLAB_GATEWAY_<NAME>) are not the lab's: servers get its own
        if not k.startswith(("JUPYTERHUB_", "JPY_", "CONFIGPROXY_", "EARTHLAB_GATEWAY_"))
    }
    env["PATH"] = os.pathsep.join([d.bin_dir, env.get("PATH", "/usr/bin:/bin")])
    env[RUN_DIR_VAR] = d.run_dir
    policy = RunDir(d.run_dir).policy_file
    if policy.is_file():  # the copy up made; never the caller's EARTHLAB_POLICY_FILE
        env[POLICY_FILE] = str(policy)
    return env


def _keep_client_secret(run: RunDir, test_provider: bool) -> None:
    """Write the hub's OpenID client secret into ``secrets/`` (0600), for the hub to read.

    The test provider accepts any secret: a new random one. A real provider's comes from the
    environment variable the policy names (``auth.oidc.client_secret_env``).
    """
    if test_provider:
        run.new_secret("oidc-client-secret")
        return
    policy = yaml.safe_load(run.policy_file.read_text(encoding="utf-8")) or {}
    name = ((policy.get("auth") or {}).get("oidc") or {}).get("client_secret_env")
    value = os.environ.get(name) if isinstance(name, str) else None
    if not value:
        raise ConfigurationError(
            f"the hub's OpenID client secret is read from ${name or 'EARTHLAB_OIDC_CLIENT_SECRET'}"
            ", which is not set: export it (the secret your identity provider gave the lab's "
            "client), or name another variable in auth.oidc.client_secret_env of the policy"
        )
    path = run.secret_path("oidc-client-secret")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")


def _keep_policy(run: RunDir, config: Path) -> None:
    """Copy the policy the lab starts with (``$EARTHLAB_POLICY_FILE`` or ``lab.yaml``) into the run.

    A restart of one server (:func:`restart`), from any shell, then keeps the lab's limits and
    quotas rather than falling back to the defaults.
    """
    source = Path(os.environ.get(POLICY_FILE) or config / "lab.yaml")
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"cannot read the lab's policy file {source} ({error.strerror}); "
            f"fix ${POLICY_FILE} or unset it to use the default lab.yaml"
        ) from error
    run.policy_file.write_text(text, encoding="utf-8")


def down(run_dir: str | os.PathLike[str] | None = None, timeout: float = 20.0) -> list[str]:
    """Stop every server a previous :func:`up` started from ``run_dir``, by process id.

    Parameters
    ----------
    run_dir
        Run directory (default: :func:`default_run_dir`).
    timeout
        Seconds each server gets to exit after SIGTERM before SIGKILL.

    Processes of the run left behind by a server that was killed (users' servers and
    kernels of a hub killed with SIGKILL, schedulers and workers of a killed gateway) are
    found by the run directory in their environment or working directory and ended too.

    Returns
    -------
    list of str
        Names of the servers that were running and are now stopped, then
        ``"<n> orphaned process(es)"`` if such leftovers were ended.
    """
    run = RunDir(run_dir or default_run_dir())
    stopped = []
    procs = list(reversed(_procs(run)))  # the hub first: it stops its users' servers
    first = [p for p in procs if p.name == "hub"]
    rest = [p for p in procs if p.name != "hub"]
    for proc in first:
        if stop(proc, timeout):
            stopped.append(proc.name)
    # then the others at once: none needs another to stop (a gateway stops its own clusters)
    results = stop_all(rest, timeout)
    stopped += [proc.name for proc, was in zip(rest, results, strict=True) if was]
    # What a server killed without cleaning up left behind (a hub killed with SIGKILL leaves
    # its users' servers and kernels, a gateway its schedulers and workers): every process
    # marked with the run directory, or working inside it.
    if run.path.is_dir():
        orphans = end_processes(run_processes(run.path, RUN_DIR_VAR))
        if orphans:
            stopped.append(f"{len(orphans)} orphaned process(es)")
    _write_state(run, [])
    if run.lab_json.is_file():
        _remove_pgstac(run.deployment())  # rebuilt from the centres' files at every `up`
    open_ports(run.path)  # the firewall rules of isolated users, if any
    return stopped


def status(run_dir: str | os.PathLike[str] | None = None) -> list[tuple[Proc, bool]]:
    """Say which servers of the lab in ``run_dir`` run.

    Returns
    -------
    list of (Proc, bool)
        Each server started by the last :func:`up` and whether it runs.
    """
    run = RunDir(run_dir or default_run_dir())
    return [(p, p.alive()) for p in _procs(run)]


def _procs(run: RunDir) -> list[Proc]:
    if not run.state_json.is_file():
        return []
    data = json.loads(run.state_json.read_text(encoding="utf-8"))
    return [Proc(**{**p, "command": tuple(p["command"])}) for p in data["processes"]]


def _write_state(run: RunDir, procs: list[Proc]) -> None:
    run.state_json.write_text(
        json.dumps({"processes": [p.to_dict() for p in procs]}, indent=2) + "\n",
        encoding="utf-8",
    )
