"""cluster.yaml passes the Ray cluster launcher's own config validation, and that validation
catches the mistakes a lab member is likely to make when filling it in.

`ray up` has no dry run; the launcher validates with ``prepare_config`` (fills the on-prem
defaults, requires head_ip/worker_ips) then ``validate_config`` (JSON schema, no unknown keys).
Both are internal API, hence the ray==2.60.* pin in pyproject.toml.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import click
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _validate(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def cluster():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_ray_version_is_the_pinned_one():
    import ray

    # The validation API below is internal; pyproject pins ray>=2.60,<2.61 for it.
    assert ray.__version__.startswith("2.60.")
    assert re.search(r'"ray\[[^]]*\]>=2\.60,<2\.61"', (ROOT / "pyproject.toml").read_text())


def test_cluster_yaml_passes_ray_validation(cluster):
    prepared = _validate(cluster)
    assert prepared["provider"]["type"] == "local"
    # one on-prem node type; every listed worker server is kept in the cluster
    (node_type,) = prepared["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(cluster["provider"]["worker_ips"])


def test_cluster_yaml_keeps_control_ports_private_and_uses_tokens(cluster):
    head = " ".join(cluster["head_start_ray_commands"])
    workers = " ".join(cluster["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in head + workers
    for cmds in (head, workers):
        assert "RAY_AUTH_MODE=token" in cmds
        assert "--num-gpus=$(nvidia-smi" in cmds
    # the token comes from a file outside the repository and is synced to Ray's default path
    mounts = cluster["file_mounts"]
    assert mounts["~/.ray/auth_token"].startswith("~/")
    assert "token" not in " ".join(p.name for p in ROOT.iterdir())
    # the placeholders are the documentation range / private network, marked for replacement
    text = (ROOT / "cluster.yaml").read_text()
    assert text.count("REPLACE") >= 4
    assert cluster["provider"]["head_ip"].startswith("10.")


def test_cluster_yaml_installs_genaudio_from_the_synced_repo(cluster):
    assert cluster["file_mounts"]["~/genaudio"] == "."
    setup = "\n".join(cluster["setup_commands"])
    assert "pip install -q -e ~/genaudio" in setup
    assert "download.pytorch.org/whl/cu" in setup  # a CUDA torch build, installed first
    assert setup.index("torch") < setup.index("-e ~/genaudio")
    assert "**/.venv" in cluster["rsync_exclude"]


def test_misspelt_top_level_key_fails(cluster):
    bad = copy.deepcopy(cluster)
    bad["setup_comands"] = bad.pop("setup_commands")
    with pytest.raises(jsonschema.ValidationError, match="setup_comands"):
        _validate(bad)


def test_misspelt_auth_key_fails(cluster):
    bad = copy.deepcopy(cluster)
    bad["auth"]["ssh_usr"] = bad["auth"].pop("ssh_user")
    with pytest.raises(jsonschema.ValidationError, match="ssh_usr"):
        _validate(bad)


def test_wrong_type_fails(cluster):
    bad = copy.deepcopy(cluster)
    bad["head_start_ray_commands"] = "ray start --head"  # a string, not a list of commands
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad)


def test_missing_head_ip_fails(cluster):
    bad = copy.deepcopy(cluster)
    del bad["provider"]["head_ip"]
    with pytest.raises(click.ClickException, match="head_ip"):
        _validate(bad)


def test_misspelt_worker_ips_fails(cluster):
    # provider allows extra keys, so a misspelling surfaces as the required key going missing
    bad = copy.deepcopy(cluster)
    bad["provider"]["worker_ip"] = bad["provider"].pop("worker_ips")
    with pytest.raises(click.ClickException, match="head_ip"):
        _validate(bad)


def test_file_mount_sources_in_the_repo_exist(cluster):
    for remote, local in cluster["file_mounts"].items():
        if not local.startswith("~"):
            assert (ROOT / local).exists(), f"file_mounts {remote}: {local} is missing"
