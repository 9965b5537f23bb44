"""The hub and gateway configurations, local and Kubernetes, say the same thing (no server run).

The local files (hub_config/jupyterhub_config.py, dask_gateway_config.py) are loaded as their
servers load them, against a run directory written like ``earthlab hub up`` writes it; the Helm
values' Python snippets are executed the way the charts execute them.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config, PyFileConfigLoader

from lab_server.deploy import Deployment, GatewayPorts, RunDir
from lab_server.deploy._kernels import install_kernel, kernel_spec
from lab_server.deploy._layout import SECRET_NAMES, access_scope, gateway_env_names

ROOT = Path(__file__).resolve().parent.parent
HUB_CONFIG = ROOT / "hub_config"
HELM = HUB_CONFIG / "helm"
CENTRES = ("theia", "odatis", "aeris")  # the sample's open centres, in file order


@pytest.fixture(scope="module")
def policy_modules():
    sys.path.insert(0, str(HUB_CONFIG))
    try:
        import earthlab_gateway
        import earthlab_hub

        yield earthlab_gateway, earthlab_hub
    finally:
        sys.path.remove(str(HUB_CONFIG))


@pytest.fixture()
def run_dir(tmp_path: Path) -> RunDir:
    """A run directory as ``earthlab hub up`` writes it (no process started)."""
    centres_file = tmp_path / "centres.yaml"
    centres_file.write_text(
        "version: 1\ncentres:\n"
        + "".join(
            f"  - name: {c}\n    catalog: {{kind: stac-static, href: {c}/catalog.json}}\n"
            for c in CENTRES
        )
    )
    run = RunDir(tmp_path / "run")
    run.create()
    for name in SECRET_NAMES:
        run.new_secret(name)
    gateways = tuple(
        GatewayPorts(c, 9100 + 10 * i, 9101 + 10 * i, 9102 + 10 * i, 9103 + 10 * i)
        for i, c in enumerate(CENTRES)
    )
    for g in gateways:
        run.new_secret(f"{g.service}-token")
    run.new_secret("processes-token")
    run.write_deployment(
        Deployment(
            run_dir=str(run.path),
            port=8000,
            proxy_api_port=8001,
            hub_api_port=8081,
            gateways=gateways,
            centres_file=str(centres_file),
            hub_config=str(HUB_CONFIG),
            bin_dir=str(Path(sys.executable).parent),
            processes_port=9300,
        )
    )
    return run


def load_config(path: Path, monkeypatch, **env: str) -> Config:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    loader = PyFileConfigLoader(path.name, path=str(path.parent))
    return loader.load_config()


def local_gateway(run: RunDir, centre: str, monkeypatch) -> Config:
    return load_config(
        HUB_CONFIG / "dask_gateway_config.py",
        monkeypatch,
        EARTHLAB_HUB_RUN_DIR=str(run.path),
        EARTHLAB_GATEWAY_CENTRE=centre,
    )


def local_hub(run: RunDir, monkeypatch) -> Config:
    return load_config(
        HUB_CONFIG / "jupyterhub_config.py", monkeypatch, EARTHLAB_HUB_RUN_DIR=str(run.path)
    )


def helm_values(name: str) -> dict:
    return yaml.safe_load((HELM / name).read_text())


def helm_gateway(centre: str, policy_modules, monkeypatch) -> tuple[dict, Config]:
    """A gateway release's values and the config its extraConfig builds (as in the image)."""
    earthlab_gateway, _ = policy_modules
    monkeypatch.setattr(earthlab_gateway, "kubernetes_backend_class", lambda: "KubeBackend+limits")
    values = helm_values(f"dask-gateway-{centre}.yaml")
    c = Config()
    for code in values["gateway"]["extraConfig"].values():
        exec(compile(code, f"dask-gateway-{centre}.yaml", "exec"), {"c": c})
    return values, c


@pytest.mark.parametrize("centre", CENTRES)
def test_local_gateway_is_the_hub_service_with_the_policy(
    centre, run_dir, monkeypatch, policy_modules
):
    # policy_modules: hub_config importable, as in the gateway image
    c = local_gateway(run_dir, centre, monkeypatch)
    deployment = run_dir.deployment()
    ports = deployment.gateway(centre)
    assert c.DaskGateway.authenticator_class == "dask_gateway_server.auth.JupyterHubAuthenticator"
    assert c.JupyterHubAuthenticator.jupyterhub_service_name == f"dask-gateway-{centre}"
    assert c.JupyterHubAuthenticator.use_service_access_scopes is True
    assert c.JupyterHubAuthenticator.jupyterhub_api_url == "http://127.0.0.1:8081/hub/api"
    assert c.JupyterHubAuthenticator.jupyterhub_api_token == run_dir.secret(
        f"dask-gateway-{centre}-token"
    )
    assert c.Proxy.prefix == f"/services/dask-gateway-{centre}"
    assert c.Proxy.tcp_address == f"127.0.0.1:{ports.tcp_port}"
    # the hub routes to the dashboards' front; dask-gateway's own proxy is private behind it
    assert c.DashboardFront.front_address == f"127.0.0.1:{ports.http_port}"
    # chosen by hub up with the others, outside the ports client connections take
    assert c.Proxy.address == f"127.0.0.1:{ports.proxy_port}"
    assert c.Proxy.address not in (c.DashboardFront.front_address, c.DaskGateway.address)
    assert c.DaskGateway.backend_class.__name__ == "EarthLabLocalBackend"
    assert [Path(c.ClusterConfig.scheduler_cmd[0]).name, c.ClusterConfig.scheduler_cmd[1]] == [
        "dask",
        "scheduler",
    ]
    assert [Path(c.ClusterConfig.worker_cmd[0]).name, c.ClusterConfig.worker_cmd[1]] == [
        "dask",
        "worker",
    ]
    assert Path(c.ClusterConfig.worker_cmd[0]).is_file()
    assert c.ClusterConfig.worker_cmd[2] == "--preload"  # held to its cores
    assert Path(c.ClusterConfig.worker_cmd[3]).name == "earthlab_worker_cores.py"
    assert Path(c.ClusterConfig.worker_cmd[3]).is_file()
    # lab.yaml's numbers
    assert c.ClusterConfig.idle_timeout == 1800
    assert c.ClusterConfig.cluster_max_workers == 8
    assert c.UserLimits.max_clusters_per_user == 2
    assert c.UserLimits.max_workers_per_user == 8
    spec = {f["field"]: f for f in c.Backend.cluster_options.get_specification()}
    assert spec["worker_cores"]["spec"] == {"type": "int", "min": 1, "max": 4}
    assert spec["worker_memory"]["spec"] == {"type": "float", "min": 0.5, "max": 8.0}
    assert (spec["worker_cores"]["default"], spec["worker_memory"]["default"]) == (1, 2.0)
    # workers read files as the notebook does
    kernel_env = kernel_spec("earth-analytics")["env"]
    assert {k: c.ClusterConfig.environment[k] for k in kernel_env} == kernel_env
    assert c.ClusterConfig.environment["EARTHLAB_CENTRE"] == centre
    assert c.ClusterConfig.environment["EARTHLAB_CENTRES"] == deployment.centres_file


def test_options_handler_gives_the_backend_bytes_and_threads(policy_modules):
    earthlab_gateway, _ = policy_modules
    options = earthlab_gateway.cluster_options(earthlab_gateway.load_policy())
    chosen = options.parse_options({"worker_cores": 3, "worker_memory": 1.5})
    assert options.get_configuration(chosen, user=None) == {
        "worker_cores": 3,
        "worker_threads": 3,
        "worker_memory": 1.5 * 2**30,
    }
    with pytest.raises(ValueError, match="worker_cores must be <= 4"):
        options.parse_options({"worker_cores": 5})


def test_local_hub_registers_gateways_scopes_and_environment(run_dir, monkeypatch):
    c = local_hub(run_dir, monkeypatch)
    deployment = run_dir.deployment()
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == {
        "dask-gateway-theia",
        "dask-gateway-odatis",
        "dask-gateway-aeris",
        "earthlab-admin",
        "processes",
    }
    assert services["processes"]["url"] == "http://127.0.0.1:9300"
    assert services["processes"]["api_token"] == run_dir.secret("processes-token")
    for g in deployment.gateways:
        assert services[g.service]["url"] == f"http://127.0.0.1:{g.http_port}"
        assert services[g.service]["api_token"] == run_dir.secret(f"{g.service}-token")
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    scopes = [access_scope(centre) for centre in CENTRES]
    processes = "access:services!service=processes"
    assert roles["user"]["scopes"] == ["self", *scopes, processes]
    assert c.Spawner.server_token_scopes == [
        "users:activity!user",
        "access:servers!server",
        *scopes,
        processes,
    ]
    assert not any(s.startswith("access:services") for s in roles["earthlab-admin"]["scopes"])
    env = c.Spawner.environment
    for centre in CENTRES:
        address_var, proxy_var = gateway_env_names(centre)
        assert env[address_var] == f"http://127.0.0.1:8000/services/dask-gateway-{centre}"
        assert env[proxy_var] == f"gateway://127.0.0.1:{deployment.gateway(centre).tcp_port}"
    assert env["EARTHLAB_CENTRES"] == deployment.centres_file
    assert env["EARTHLAB_PROCESSES__URL"] == "http://127.0.0.1:8000/services/processes/"
    assert "--MultiKernelManager.default_kernel_name=earth-analytics" in c.Spawner.args
    assert c.ConfigurableHTTPProxy.should_start is False
    # one password per account, from the run directory's accounts file (no shared password)
    assert c.JupyterHub.authenticator_class.__name__ == "LabPasswordAuthenticator"
    assert c.LabPasswordAuthenticator.accounts_file == str(run_dir.secrets_dir / "accounts.json")
    assert "SharedPasswordAuthenticator" not in c
    hook_gateways = inspect.getclosurevars(c.Spawner.post_stop_hook).nonlocals["gateways"]
    assert hook_gateways == {
        g.centre: f"http://127.0.0.1:{g.http_port}/services/{g.service}"
        for g in deployment.gateways
    }


@pytest.mark.parametrize("centre", CENTRES)
def test_helm_gateway_release_agrees_with_the_local_gateway(
    centre, run_dir, monkeypatch, policy_modules
):
    local = local_gateway(run_dir, centre, monkeypatch)
    values, helm = helm_gateway(centre, policy_modules, monkeypatch)
    assert values["gateway"]["prefix"] == local.Proxy.prefix == f"/services/dask-gateway-{centre}"
    assert values["gateway"]["auth"]["type"] == "jupyterhub"
    assert "apiToken" not in values["gateway"]["auth"]["jupyterhub"]  # given at install time
    assert helm.DaskGateway.backend_class == "KubeBackend+limits"
    # dashboards for their owner only: the front runs, and Traefik asks it about every request
    assert helm.DashboardFront.front_address.endswith(":8001")
    front = yaml.safe_load_all((HELM / "dashboards-forward-auth.yaml").read_text())
    middleware = next(d for d in front if d["kind"] == "Middleware")
    name = middleware["metadata"]["name"].replace("CENTRE", centre)
    assert (
        f"--entrypoints.web.http.middlewares={name}@kubernetescrd"
        in (values["traefik"]["additionalArguments"])
    )
    assert (
        middleware["spec"]["forwardAuth"]["address"]
        .replace("CENTRE", centre)
        .endswith(f":8001{local.Proxy.prefix}/dashboard-auth")
    )
    for section, key in [
        ("DaskGateway", "authenticator_class"),
        ("JupyterHubAuthenticator", "jupyterhub_service_name"),
        ("JupyterHubAuthenticator", "use_service_access_scopes"),
        ("ClusterConfig", "idle_timeout"),
        ("ClusterConfig", "cluster_max_workers"),
        ("UserLimits", "max_clusters_per_user"),
        ("UserLimits", "max_workers_per_user"),
    ]:
        assert helm[section][key] == local[section][key], f"{section}.{key}"
    assert (
        helm.Backend.cluster_options.get_specification()
        == local.Backend.cluster_options.get_specification()
    )
    local_env = dict(local.ClusterConfig.environment)
    local_env.pop("EARTHLAB_CENTRES")  # the centres file's path differs; workers get their own
    assert helm.ClusterConfig.environment == local_env
    worker = values["gateway"]["backend"]["worker"]
    defaults = {f["field"]: f["default"] for f in local.Backend.cluster_options.get_specification()}
    assert worker["cores"]["request"] == defaults["worker_cores"] == worker["threads"]
    assert worker["memory"]["request"] == f"{defaults['worker_memory']:g}G"


def test_helm_hub_agrees_with_the_local_hub(run_dir, monkeypatch, policy_modules):
    # policy_modules: earthlab_hub importable, as in the hub pod
    local = local_hub(run_dir, monkeypatch)
    values = helm_values("jupyterhub.yaml")
    hub = values["hub"]
    gateway_services = {
        s["name"] for s in local.JupyterHub.services if s["name"].startswith("dask-gateway-")
    }
    assert set(hub["services"]) == gateway_services | {"processes"}
    processes = next(s for s in local.JupyterHub.services if s["name"] == "processes")
    assert hub["services"]["processes"]["display"] is processes["display"]
    assert values["singleuser"]["extraEnv"]["EARTHLAB_PROCESSES__URL"] == (
        "https://lab.example.org/services/processes/"
    )
    for name in gateway_services:  # the gateways' OAuth login for dashboards, no confirmation
        local_service = next(s for s in local.JupyterHub.services if s["name"] == name)
        assert hub["services"][name]["oauth_no_confirm"] is local_service["oauth_no_confirm"]
    assert all("apiToken" not in s for s in hub["services"].values())  # given at install time
    user_role = next(r for r in local.JupyterHub.load_roles if r["name"] == "user")
    assert hub["loadRoles"]["user"]["scopes"] == user_role["scopes"]
    service_role = next(r for r in local.JupyterHub.load_roles if r["name"] == "processes-service")
    assert hub["loadRoles"]["processes-service"]["scopes"] == service_role["scopes"]
    assert hub["loadRoles"]["processes-service"]["services"] == service_role["services"]
    assert hub["config"]["Spawner"]["server_token_scopes"] == local.Spawner.server_token_scopes
    # local only: the kernelspec location, and the run directory marking the local processes
    local_env = set(local.Spawner.environment) - {"JUPYTER_PATH", "EARTHLAB_HUB_RUN_DIR"}
    assert set(values["singleuser"]["extraEnv"]) == local_env
    # each server reaches each centre's gateway through the hub, scheduler traffic to its TCP port
    env = values["singleuser"]["extraEnv"]
    for centre in CENTRES:
        release = helm_values(f"dask-gateway-{centre}.yaml")
        address_var, proxy_var = gateway_env_names(centre)
        assert env[address_var] == f"https://lab.example.org/services/dask-gateway-{centre}"
        assert env[proxy_var].endswith(f":{release['traefik']['service']['ports']['tcp']['port']}")
        assert (
            release["gateway"]["auth"]["jupyterhub"]["apiUrl"] == "https://lab.example.org/hub/api"
        )
    # same kernel, same culling
    server_config = values["singleuser"]["extraFiles"]["jupyter-server-config"]["data"]
    args = dict(a.lstrip("-").split("=", 1) for a in local.Spawner.args if "=" in a)
    assert (
        server_config["MultiKernelManager"]["default_kernel_name"]
        == args["MultiKernelManager.default_kernel_name"]
    )
    assert (
        str(server_config["MappingKernelManager"]["cull_idle_timeout"])
        == args["MappingKernelManager.cull_idle_timeout"]
    )
    assert values["cull"]["enabled"] is True
    assert str(values["cull"]["timeout"]) == args["ServerApp.shutdown_no_activity_timeout"]
    # the same post-stop hook, towards every centre's gateway
    c = Config()
    policy_path = str(Path(__file__).resolve().parent.parent / "hub_config" / "lab.yaml")
    for code in hub["extraConfig"].values():
        code = code.replace("/usr/local/etc/jupyterhub/earthlab/lab.yaml", policy_path)
        exec(compile(code, "jupyterhub.yaml", "exec"), {"c": c})
    # single sign-on: the same claims mapping and settings as `hub up --auth oidc`
    import earthlab_gateway
    import earthlab_hub

    mapping = earthlab_hub.oidc_mapping(earthlab_gateway.load_policy())
    key = c.GenericOAuthenticator.auth_state_groups_key
    assert inspect.getclosurevars(key).nonlocals["mapping"] == mapping
    username = c.GenericOAuthenticator.username_claim
    assert inspect.getclosurevars(username).nonlocals["claim"] == mapping["username_claim"]
    discovery = {
        "authorization_endpoint": hub["config"]["GenericOAuthenticator"]["authorize_url"],
        "token_endpoint": hub["config"]["GenericOAuthenticator"]["token_url"],
        "userinfo_endpoint": hub["config"]["GenericOAuthenticator"]["userdata_url"],
        "end_session_endpoint": "https://sso.example.org/realms/dataterra/protocol/"
        "openid-connect/logout",
    }
    settings = earthlab_hub.oidc_settings(discovery, mapping, "https://lab.example.org/", "s")
    helm_oauth = hub["config"]["GenericOAuthenticator"]
    for name, value in settings.items():
        if name in ("client_secret", "username_claim", "auth_state_groups_key"):
            continue  # the secret from the environment; callables from earthlab-sso above
        helm_value = helm_oauth[name]
        assert (set(helm_value) if isinstance(value, set) else helm_value) == value, name
    hook_gateways = inspect.getclosurevars(c.Spawner.post_stop_hook).nonlocals["gateways"]
    assert {k: v.rsplit("/", 1)[1] for k, v in hook_gateways.items()} == {
        centre: f"dask-gateway-{centre}" for centre in CENTRES
    }


@pytest.mark.slow
def test_helm_has_one_gateway_release_per_sample_centre(sample_dir):
    from lab._centres import read_centres_file

    centres = read_centres_file(sample_dir / "centres.yaml")
    names = list(centres)
    assert tuple(names) == ("theia", "odatis", "dinamis", "aeris")
    releases = sorted(
        p.stem.removeprefix("dask-gateway-") for p in HELM.glob("dask-gateway-*.yaml")
    )
    assert releases == sorted(names)
    # Open centres' gateways are in the base values; the restricted centre's gateway and its
    # data service come in their own layer, installed on top.
    open_centres = [n for n in names if not centres[n].restricted]
    assert open_centres == list(CENTRES)
    assert list(helm_values("jupyterhub.yaml")["hub"]["services"]) == [
        *(f"dask-gateway-{n}" for n in open_centres),
        "processes",  # the processing service, one for the lab
    ]
    layer = helm_values("jupyterhub-dinamis.yaml")["hub"]["services"]
    assert set(layer) == {"dask-gateway-dinamis", "restricted-dinamis"}


def test_kernelspec_has_the_cloud_optimised_read_settings(tmp_path):
    spec = kernel_spec("earth-analytics")
    assert spec["display_name"] == "Earth Analytics"
    env = spec["env"]
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert env["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    assert env["GDAL_HTTP_MULTIRANGE"] == "YES"
    assert int(env["GDAL_HTTP_MAX_RETRY"]) > 0 and float(env["GDAL_HTTP_RETRY_DELAY"]) > 0
    assert env["VSI_CACHE"] == "TRUE"
    installed = install_kernel(prefix=str(tmp_path))
    assert installed == tmp_path / "share" / "jupyter" / "kernels" / "earth-analytics"
    written = json.loads((installed / "kernel.json").read_text())
    assert written["argv"][0] == sys.executable
    assert written["argv"][1:] == spec["argv"][1:] and written["env"] == env


def test_kernels_install_command(tmp_path, capsys):
    from lab._cli import main

    assert main(["kernels", "install", "--prefix", str(tmp_path)]) == 0
    assert (tmp_path / "share/jupyter/kernels/earth-analytics/kernel.json").is_file()
    assert "installed kernel 'earth-analytics'" in capsys.readouterr().out


def test_local_hub_first_login_settings(run_dir, monkeypatch):
    c = local_hub(run_dir, monkeypatch)
    assert c.Spawner.default_url == "/lab/tree/earthlab-notebooks/WELCOME.md"
    announcement = c.JupyterHub.template_vars["announcement_login"]
    assert "Earth Analytics Lab" in announcement
    assert all(f"<b>{centre}</b>" in announcement for centre in CENTRES)
    sources = inspect.getclosurevars(c.Spawner.pre_spawn_hook).nonlocals["sources"]
    assert sources == {"notebooks": ROOT / "docs/notebooks", "workshop": ROOT / "docs/workshop"}


def test_copy_notebooks_copies_missing_files_only(tmp_path, policy_modules):
    _, earthlab_hub = policy_modules
    sources = {"notebooks": ROOT / "docs/notebooks", "workshop": ROOT / "docs/workshop"}
    home = tmp_path / "home" / "nora"
    written = earthlab_hub.copy_notebooks(home, sources)
    folder = home / "earthlab-notebooks"
    shipped = sorted(
        f"{sub}/{p.name}" for sub, d in sources.items() for p in Path(d).glob("*.ipynb")
    )
    assert len(shipped) == 10  # six notebooks, four workshop sessions
    assert sorted(str(p.relative_to(folder)) for p in written) == sorted(["WELCOME.md", *shipped])
    for name in shipped:
        sub, file = name.split("/")
        assert (folder / name).read_bytes() == (sources[sub] / file).read_bytes()
    # The user's edits survive; a deleted file comes back; nothing else is written.
    (folder / "notebooks/01-getting-started.ipynb").write_text("my edits")
    (folder / "WELCOME.md").write_text("my welcome")
    (folder / "workshop/2-accessible.ipynb").unlink()
    again = earthlab_hub.copy_notebooks(home, sources)
    assert again == [folder / "workshop/2-accessible.ipynb"]
    assert (folder / "notebooks/01-getting-started.ipynb").read_text() == "my edits"
    assert (folder / "WELCOME.md").read_text() == "my welcome"
    assert earthlab_hub.copy_notebooks(home, sources) == []


def test_pre_spawn_hook_copies_into_the_spawners_home(tmp_path, policy_modules):
    import logging
    from types import SimpleNamespace

    _, earthlab_hub = policy_modules
    hook = earthlab_hub.copy_notebooks_hook({"workshop": ROOT / "docs/workshop"})
    spawner = SimpleNamespace(
        home_dir=str(tmp_path / "nora"),
        user=SimpleNamespace(name="nora"),
        log=logging.getLogger("test"),
    )
    hook(spawner)
    assert sorted(p.name for p in (tmp_path / "nora/earthlab-notebooks/workshop").iterdir()) == [
        "1-findable.ipynb",
        "2-accessible.ipynb",
        "3-interoperable.ipynb",
        "4-reusable.ipynb",
    ]


def test_worker_cores_are_chosen_spread_and_capped() -> None:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "hub_config" / "earthlab_worker_cores.py"
    spec = importlib.util.spec_from_file_location("earthlab_worker_cores", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cpus = [0, 1, 2, 3]
    assert module.choose_cpus(cpus, 8, "w") == {0, 1, 2, 3}  # never more than there are
    chosen = module.choose_cpus(cpus, 2, "worker-a")
    assert len(chosen) == 2 and chosen <= set(cpus)
    assert chosen == module.choose_cpus(cpus, 2, "worker-a")  # the same for the same worker
    starts = {min(module.choose_cpus(cpus, 1, f"w{i}")) for i in range(40)}
    assert starts == set(cpus)  # spread over the machine, not all on CPU 0
    # consecutive CPUs, wrapping round
    assert module.choose_cpus([4, 6], 1, "x") <= {4, 6}
