"""Shared fixtures: the real Anny body model (built once per test session) and a simulated 2-node
Ray cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
# Ray starts its workers at niceness 15: on a busy machine they would starve behind other work.
os.environ.setdefault("RAY_worker_niceness", "0")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def anny_body():
    """The default Anny body model (``anny-noeyes-notongue``), float32."""
    from munet.body import build_body_model
    from munet.config import BodyConfig

    return build_body_model(BodyConfig())


@pytest.fixture(scope="session")
def ray_local():
    """A private simulated 2-node Ray cluster for the whole session, on loopback only.

    Two nodes of 3 logical CPUs each (``ray.cluster_utils.Cluster``), small object stores, no
    dashboard. Shut down at the end with ``ray.shutdown()`` and ``cluster.shutdown()``, which stop
    only what this session started (never ``ray stop``).
    """
    import ray
    from ray.cluster_utils import Cluster

    # 3 CPUs a node: a training worker of 2 CPUs takes a node to itself (DDP across nodes), and
    # the third is free for Ray Data's decode tasks (data.decode_cpus), as on a real GPU node.
    node = {"num_cpus": 3, "object_store_memory": 150 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield ray
    ray.shutdown()
    cluster.shutdown()
