"""Shared fixtures (the real Anny body model, a simulated 2-node Ray cluster) and the grouping of
tests for parallel runs.

``make test`` runs the suite on several pytest-xdist workers (``-n 3 --dist loadgroup``): most of
its wall time is spent waiting on Ray (actor start-up, placement groups, polling) rather than
computing, so other tests run meanwhile. Each worker builds session and module fixtures for itself,
so :func:`pytest_collection_modifyitems` keeps every module on one worker (its module fixtures are
built once) and every test that uses the shared cluster :func:`ray_local` on one worker (one
cluster in all)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
# Ray starts its workers at niceness 15; next to other tests computing, they would starve.
os.environ.setdefault("RAY_worker_niceness", "0")

REPO = Path(__file__).resolve().parents[1]

SHARED_CLUSTER_GROUP = "ray_local"
"""The pytest-xdist group of every test that uses the :func:`ray_local` cluster."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test in an ``xdist_group`` (used by ``--dist loadgroup``): :data:`SHARED_CLUSTER_GROUP`
    for the users of :func:`ray_local`, else its module."""
    for item in items:
        uses_cluster = SHARED_CLUSTER_GROUP in getattr(item, "fixturenames", ())
        group = SHARED_CLUSTER_GROUP if uses_cluster else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def anny_body():
    """The default Anny body model (``anny-noeyes-notongue``), float32."""
    from munet.body import build_body_model
    from munet.config import BodyConfig

    return build_body_model(BodyConfig())


@pytest.fixture(scope="session")
def ray_local():
    """A private simulated 2-node Ray cluster for the whole session, on loopback only.

    Two nodes of 2 logical CPUs each (``ray.cluster_utils.Cluster``), small object stores, no
    dashboard. Shut down at the end with ``ray.shutdown()`` and ``cluster.shutdown()``, which stop
    only what this session started (never ``ray stop``).
    """
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 2, "object_store_memory": 150 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield ray
    ray.shutdown()
    cluster.shutdown()
