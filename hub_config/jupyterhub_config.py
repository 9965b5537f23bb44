# JupyterHub configuration of the local lab (`earthlab hub up`).
#
# Reads the run directory named by EARTHLAB_HUB_RUN_DIR: lab.json (ports and paths, written by
# `earthlab hub up`) and secrets/ (tokens, cookie secret and login password, mode 0600).
#
# - configurable-http-proxy runs as its own process (started first by `earthlab hub up`, from
#   the npm prefix hub_config/node_modules); the hub only talks to its REST API;
# - each centre's Dask Gateway is the service `dask-gateway-<centre>`, routed at
#   /services/dask-gateway-<centre>/; users hold `access:services!service=dask-gateway-<centre>`
#   and so do their servers' tokens, which kernels use to create clusters;
# - single-user servers get the centres file and every gateway's addresses in their
#   environment (EARTHLAB_CENTRES, EARTHLAB_GATEWAY_<NAME>, EARTHLAB_GATEWAY_PROXY_<NAME>), the
#   Earth Analytics kernel as their default, and culling of idle kernels and servers;
# - each start of a server copies the lab's notebooks and workshop into the user's
#   ~/earthlab-notebooks/ (files not there yet only) with WELCOME.md, which JupyterLab opens;
# - each centre with restricted collections has a restricted-data service,
#   `restricted-<centre>` (started by `earthlab hub up`, see lab_server/restricted): only members of
#   the collections' hub group hold its access scope and that centre's gateway's (a role given
#   to the group); the groups are created empty: add members with the REST API
#   (POST /hub/api/groups/<group>/users) or the admin page;
# - when a server stops, its user's clusters are stopped on every gateway (post_stop_hook);
# - the service `earthlab-admin` (token in secrets/admin-token) administers users and servers.
#
# Login: each account with its own password (secrets/accounts.json, `earthlab hub accounts`),
# or single sign-on with OpenID Connect (`hub up --auth oidc`, lab.yaml's auth.oidc).
# docs/deployment.md says what a real deployment uses instead (OAuth, TLS, Kubernetes).
# ruff: noqa: F821  (`c` is given by traitlets)
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import earthlab_accounts  # noqa: E402
import earthlab_gateway  # noqa: E402
import earthlab_hub  # noqa: E402

from lab import http_session, read_centres_file  # noqa: E402
from lab_server.deploy import RunDir  # noqa: E402
from lab_server.deploy._identity import discovery_url  # noqa: E402
from lab_server.deploy._layout import (  # noqa: E402
    ADMIN_SERVICE,
    PROCESSES_SERVICE,
    notebook_sources,
)
from lab_server.environment import HUB_RUN_DIR  # noqa: E402

run = RunDir(os.environ[HUB_RUN_DIR])
lab = run.deployment()
policy = earthlab_gateway.load_policy()
centres = [g.centre for g in lab.gateways]
bin_dir = Path(lab.bin_dir)
restricted_servers = [s for s in lab.catalogues if s.restricted]
service_centres = [s.centre for s in restricted_servers]
source = read_centres_file(Path(lab.source_centres_file or lab.centres_file))
restricted_groups = {  # centres with restricted collections: their gateways are for the groups
    name: sorted(set(centre.restricted.values()))
    for name, centre in source.items()
    if centre.restricted and name in centres
}
open_centres = [c for c in centres if c not in restricted_groups]

# Network: the public proxy, the hub behind it, all on loopback.
c.JupyterHub.bind_url = lab.url
c.JupyterHub.hub_ip = lab.ip
c.JupyterHub.hub_port = lab.hub_api_port
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://{lab.ip}:{lab.proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = run.secret("proxy-token")

# State.
c.JupyterHub.db_url = f"sqlite:///{run.path / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret = bytes.fromhex(run.secret("cookie-secret"))
c.JupyterHub.cleanup_servers = True

# Login: the page says what the lab is and which centres it federates.
c.JupyterHub.template_vars = {
    "announcement_login": earthlab_hub.login_announcement(
        {name: centre.title or name for name, centre in source.items()}
    )
}
if lab.auth == "oidc":
    # Single sign-on: the provider's claims say who the user is and their groups (at each login
    # and token refresh); restricted groups need the claims lab.yaml's auth.oidc names.
    with http_session() as session:
        discovery = session.get(discovery_url(str(lab.oidc_issuer))).json()
    c.JupyterHub.authenticator_class = "generic-oauth"
    for name, value in earthlab_hub.oidc_settings(
        discovery,
        earthlab_hub.oidc_mapping(policy),
        lab.url,
        run.secret("oidc-client-secret"),
    ).items():
        setattr(c.GenericOAuthenticator, name, value)
else:
    # One password per account (secrets/accounts.json; `earthlab hub accounts add` for a
    # workshop); the person who ran `hub up` has the first account and administers the hub.
    c.JupyterHub.authenticator_class = earthlab_accounts.LabPasswordAuthenticator
    c.LabPasswordAuthenticator.accounts_file = str(run.secrets_dir / "accounts.json")
    if lab.owner:
        c.Authenticator.admin_users = {lab.owner}

# Gateways as services; who may use them.
c.JupyterHub.services = [
    earthlab_hub.gateway_service(
        g.centre, f"http://{lab.ip}:{g.http_port}", run.secret(f"{g.service}-token")
    )
    for g in lab.gateways
] + [{"name": ADMIN_SERVICE, "api_token": run.secret("admin-token")}]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": earthlab_hub.user_scopes(open_centres)},
    {
        "name": ADMIN_SERVICE,
        "description": "Create users and groups, start and stop servers, issue tokens",
        "scopes": [
            "admin:users",
            "admin:servers",
            "admin:groups",
            "tokens",
            "read:services",
            "list:services",
        ],
        "services": [ADMIN_SERVICE],
    },
]

# Restricted data: the gateway (and restricted-data service) of a centre with restricted
# collections are open to the collections' groups only, through a role given to each group.
if restricted_groups:
    # a single-person lab (not started as root, users not isolated): every account could
    # read the restricted files on disk, so they are granted to the lab's owner only
    c.JupyterHub.load_roles += earthlab_hub.group_roles(
        restricted_groups, service_centres, None if lab.isolated else (lab.owner or None)
    )
    if lab.auth != "oidc":  # with single sign-on the provider's claims make the groups
        c.JupyterHub.load_groups = {
            group: {"users": []} for groups in restricted_groups.values() for group in groups
        }
if restricted_servers:
    c.JupyterHub.services += [
        earthlab_hub.restricted_service(
            s.centre, f"http://{lab.ip}:{s.service_port}", run.secret(f"{s.service}-token")
        )
        for s in restricted_servers
    ]
    c.JupyterHub.load_roles += [earthlab_hub.restricted_service_role(service_centres)]

# Single-user servers: local processes, one home per user. Isolated users (hub up
# as root): each server runs as the user's own Unix account, from the user
# environment; otherwise every server runs as the person who started the lab.
if lab.isolated:
    import earthlab_isolation

    c.JupyterHub.spawner_class = earthlab_isolation.IsolatedSpawner
    c.IsolatedSpawner.homes_dir = str(run.path / "users")
    c.IsolatedSpawner.user_python = lab.user_python
    c.IsolatedSpawner.notebook_sources = {k: str(v) for k, v in notebook_sources().items()}
    c.Spawner.cmd = [lab.user_python, "-m", "jupyterhub.singleuser"]
    server_args = []
else:
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(run.path / "users" / "{username}")
    c.Spawner.cmd = [str(bin_dir / "jupyterhub-singleuser")]
    server_args = ["--allow-root"] if os.geteuid() == 0 else []
    # First login: the lab's notebooks and workshop in ~/earthlab-notebooks/ (missing files
    # only, at every start: the user's edits are kept) with a welcome page, the default URL.
    c.Spawner.pre_spawn_hook = earthlab_hub.copy_notebooks_hook(notebook_sources())
c.Spawner.default_url = earthlab_hub.welcome_url()  # ~/earthlab-notebooks/WELCOME.md
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.args = [
    *server_args,
    f"--MultiKernelManager.default_kernel_name={lab.kernel}",
    f"--MappingKernelManager.cull_idle_timeout={policy['hub']['cull_idle_kernels']}",
    "--MappingKernelManager.cull_interval=60",
    f"--ServerApp.shutdown_no_activity_timeout={policy['hub']['cull_idle_servers']}",
]
c.Spawner.server_token_scopes = earthlab_hub.server_token_scopes(centres, service_centres)
# The processing service (OGC API - Processes): every user may use it, from a browser session
# or a token; their servers' tokens carry its scope so lab.processes() works in a notebook.
if lab.processes_port is not None:
    c.JupyterHub.services += [
        {
            "name": PROCESSES_SERVICE,
            "url": f"http://{lab.ip}:{lab.processes_port}",
            "api_token": run.secret(f"{PROCESSES_SERVICE}-token"),
            "display": True,
            "info": {"description": "OGC API - Processes: the lab's recipes as jobs"},
        }
    ]
    processes_scope = f"access:services!service={PROCESSES_SERVICE}"
    next(r for r in c.JupyterHub.load_roles if r["name"] == "user")["scopes"].append(
        processes_scope
    )
    c.Spawner.server_token_scopes.append(processes_scope)
    c.JupyterHub.load_roles.append(earthlab_hub.processes_service_role(PROCESSES_SERVICE))
c.Spawner.environment = {
    **lab.user_environment(),
    "JUPYTER_PATH": str(run.path / "share" / "jupyter"),
    "DASK_DISTRIBUTED__DASHBOARD__LINK": "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status",
}
if lab.isolated:
    # the user environment's prefix is not the lab environment's: JupyterLab's extensions
    # (share/jupyter) and the server extensions they enable (etc/jupyter) are the latter's
    lab_prefix = bin_dir.parent
    c.Spawner.environment["JUPYTER_PATH"] += os.pathsep + str(lab_prefix / "share" / "jupyter")
    c.Spawner.environment["JUPYTER_CONFIG_PATH"] = str(lab_prefix / "etc" / "jupyter")
c.Spawner.post_stop_hook = earthlab_hub.stop_clusters_hook(
    {g.centre: f"http://{lab.ip}:{g.http_port}/services/{g.service}" for g in lab.gateways}
)
