"""lab.cluster: where a cluster goes, local fallback, options and errors (no hub needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pystac
import pytest

import lab
from lab._centres import read_centres_file
from lab._cluster import GatewayWarning, _set_options, choose_centre
from lab_server.deploy._procs import free_port

HUB_CONFIG = Path(__file__).resolve().parent.parent / "hub_config"


def write_centres(path: Path, names: list[str], gateway: dict[str, str] | None = None) -> Path:
    lines = ["version: 1", "centres:"]
    for name in names:
        lines += [
            f"  - name: {name}",
            f"    catalog: {{kind: stac-static, href: {name}/catalog.json}}",
        ]
        if gateway and name in gateway:
            lines.append(f"    gateway: {{address: {gateway[name]}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def item(item_id: str, centre: str | None, sizes: list[int | None]) -> pystac.Item:
    properties = {} if centre is None else {"earthlab:centre": centre}
    it = pystac.Item(
        item_id, None, None, pystac.utils.str_to_datetime("2022-02-15T10:40:00Z"), properties
    )
    for i, size in enumerate(sizes):
        extra = {} if size is None else {"file:size": size}
        it.add_asset(f"a{i}", pystac.Asset(f"{item_id}-{i}.tif", extra_fields=extra))
    return it


@pytest.fixture()
def no_gateway_env(monkeypatch):
    for var in ("EARTHLAB_GATEWAY_THEIA", "EARTHLAB_GATEWAY_ODATIS", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def federation(tmp_path, no_gateway_env):
    return read_centres_file(write_centres(tmp_path / "centres.yaml", ["theia", "odatis"]))


def test_bytes_decide_when_every_item_has_sizes(federation):
    items = [item("s2", "theia", [600, 400])] + [item(f"st{i}", "odatis", [10]) for i in range(3)]
    assert choose_centre(items, federation) == "theia"  # 1000 bytes against 30, 1 item against 3


def test_item_counts_decide_when_a_size_is_unknown(federation):
    items = [
        item("s2", "theia", [600, 400]),
        item("st1", "odatis", [None]),
        item("st2", "odatis", []),
    ]
    assert choose_centre(items, federation) == "odatis"


def test_ties_go_to_the_first_centre_of_the_file(federation, tmp_path):
    items = [item("a", "odatis", [500]), item("b", "theia", [500])]
    assert choose_centre(items, federation) == "theia"
    reversed_file = write_centres(tmp_path / "reversed.yaml", ["odatis", "theia"])
    assert choose_centre(items, read_centres_file(reversed_file)) == "odatis"


def test_dict_items_are_accepted(federation):
    items = [
        {"id": "a", "properties": {"earthlab:centre": "odatis"}, "assets": {"x": {"file:size": 9}}},
        {"id": "b", "properties": {"earthlab:centre": "theia"}, "assets": {"x": {"file:size": 3}}},
    ]
    assert choose_centre(items, federation) == "odatis"


def test_bad_items_say_what_to_do(federation):
    with pytest.raises(lab.ConfigurationError, match=r"item 'x' has no 'earthlab:centre'"):
        choose_centre([item("x", None, [1])], federation)
    with pytest.raises(lab.UnknownCentreError, match=r"unknown centre 'aeris'.*theia, odatis"):
        choose_centre([item("x", "aeris", [1])], federation)
    with pytest.raises(lab.ConfigurationError, match="got no item"):
        choose_centre([], federation)


@pytest.mark.slow
def test_sample_search_results_go_where_their_data_is(sample_dir, no_gateway_env):
    federation = read_centres_file(sample_dir / "centres.yaml")
    found = lab.catalog(federation.source).search()
    assert {i.properties["earthlab:centre"] for i in found} == {"theia", "odatis", "aeris"}
    assert choose_centre(found, federation) == "theia"  # scenes weigh more than station tables
    stations = lab.catalog(federation.source).search(collections=["insitu-water-quality"])
    assert choose_centre(stations, federation) == "odatis"


def test_no_gateway_gives_a_local_cluster(federation):
    items = [item("s2", "theia", [1000])]
    client = lab.cluster(near=items, workers=1, centres_file=federation, worker_memory=0.5)
    try:
        assert client.earthlab_centre is None
        assert type(client.cluster).__name__ == "LocalCluster"
        assert len(client.scheduler_info()["workers"]) == 1
        assert client.submit(sum, range(101)).result() == 5050
        (info,) = [c for c in lab.list_clusters(federation) if c.kind == "local"]
        assert info.centre is None and info.status == "running"
        assert lab.stop_clusters([info.name], centres_file=federation) == [info.name]
        assert client.cluster.status.name == "closed"
        assert [c for c in lab.list_clusters(federation) if c.kind == "local"] == []
    finally:
        client.close()
        client.cluster.close()


def test_local_options_are_checked(federation):
    with pytest.raises(
        lab.ClusterError, match=r"unknown option\(s\) gpus.*valid options: worker_cores"
    ):
        lab.cluster(centre="theia", gpus=1, centres_file=federation)
    with pytest.raises(lab.ClusterError, match=r"worker_cores must be an integer >= 1"):
        lab.cluster(centre="theia", worker_cores=0, centres_file=federation)
    with pytest.raises(lab.ConfigurationError, match="not both"):
        lab.cluster(near=[item("a", "theia", [1])], centre="theia", centres_file=federation)
    with pytest.raises(lab.ConfigurationError, match="non-negative integer"):
        lab.cluster(centre="theia", workers=-1, centres_file=federation)
    with pytest.raises(lab.ClusterError, match="no cluster named nope among yours"):
        lab.stop_clusters(["nope"], centres_file=federation)


def test_gateway_options_are_checked_against_what_the_gateway_offers(federation):
    """The hub's option spec, as the gateway sends it, rejects bad values with the bounds."""
    from dask_gateway.options import Options

    sys.path.insert(0, str(HUB_CONFIG))
    try:
        import earthlab_gateway
    finally:
        sys.path.remove(str(HUB_CONFIG))
    policy = earthlab_gateway.load_policy()
    spec = earthlab_gateway.cluster_options(policy).get_specification()
    place = federation["theia"]
    valid = r"valid options: worker_cores \(integer 1\.\.4, default 1\), worker_memory \(float 0\.5\.\.8\.0, default 2\.0\)"
    with pytest.raises(lab.ClusterError, match=r"option worker_cores=5 is invalid.*<= 4.*" + valid):
        _set_options(Options._from_spec(spec), {"worker_cores": 5}, place)
    with pytest.raises(lab.ClusterError, match=r"unknown option\(s\) threads.*" + valid):
        _set_options(Options._from_spec(spec), {"threads": 2}, place)
    offered = Options._from_spec(spec)
    _set_options(offered, {"worker_cores": 2, "worker_memory": 4.0}, place)
    assert dict(offered) == {"worker_cores": 2, "worker_memory": 4.0}


def test_gateway_without_hub_token_says_what_to_do(tmp_path, no_gateway_env):
    address = f"http://127.0.0.1:{free_port()}/services/dask-gateway-theia"
    federation = read_centres_file(
        write_centres(tmp_path / "c.yaml", ["theia"], gateway={"theia": address})
    )
    with pytest.raises(
        lab.ClusterError, match=r"JUPYTERHUB_API_TOKEN is not set.*EARTHLAB_GATEWAY_THEIA"
    ):
        lab.cluster(centre="theia", centres_file=federation)


def test_unreachable_gateway_is_a_cluster_error(tmp_path, no_gateway_env, monkeypatch):
    address = f"http://127.0.0.1:{free_port()}/services/dask-gateway-theia"
    federation = read_centres_file(
        write_centres(tmp_path / "c.yaml", ["theia"], gateway={"theia": address})
    )
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "0" * 32)
    with pytest.raises(
        lab.ClusterError, match=r"cannot reach the gateway of centre 'theia'.*hub status"
    ):
        lab.cluster(centre="theia", centres_file=federation)
    # listing reports the gateway instead of raising: the other gateways would still be listed
    with pytest.warns(GatewayWarning, match=r"theia \(unreachable\): cannot reach"):
        listed = lab.list_clusters(federation)
    assert listed == [] and listed.gateways["theia"].status == "unreachable"
    with pytest.warns(GatewayWarning, match=r"not stopped"):
        assert lab.stop_clusters(centres_file=federation) == []
    with pytest.raises(lab.ClusterError, match=r"some-cluster not found.*theia \(unreachable\)"):
        lab.stop_clusters(["some-cluster"], centres_file=federation)
