"""Start or join Ray the same way in every job, sweep and tool.

:func:`init_ray` joins a running cluster when an address is given or ``RAY_ADDRESS`` is set (as
``ray job submit`` does for its drivers); otherwise it starts a private local Ray bound to the
loopback interface only. It never attaches to some other local cluster it merely happens to find.

Environment it makes explicit (only when unset, so the user's values win): usage statistics off,
Ray Data's progress bars off when standard error is not a terminal (a job's log file),
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (without it Ray binds to the machine's external address
even when asked for 127.0.0.1; Ray reads it at import, so call :func:`init_ray` before importing
``ray`` or set it in the environment), and the token authentication mode: ``token`` for the private
local Ray (Ray generates the token, in ``~/.ray/auth_token`` unless ``RAY_AUTH_TOKEN`` or
``RAY_AUTH_TOKEN_PATH`` name one, so another user of a shared machine cannot reach its dashboard,
jobs API or GCS even on the loopback interface), and for a remote cluster ``token`` when a token is
available, ``disabled`` otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

MIN_LOCAL_CPUS = 4
"""Fewest logical CPUs a local Ray declares. Ray Train workers each hold one, and Ray Data's read
tasks and each trial's driver need slots beside them: on a 2-core machine, declaring only the
cores leaves the data pipeline or a Tune trial waiting for a CPU that never frees. Declaring more
logical CPUs than cores is safe (they are scheduling slots, not threads)."""


def default_local_cpus() -> int:
    """Logical CPUs of a local Ray started without ``num_cpus``: the cores, at least
    :data:`MIN_LOCAL_CPUS`."""
    return max(MIN_LOCAL_CPUS, os.cpu_count() or 1)


def _free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _pin_dashboard() -> int:
    """A free loopback port for the local Ray's dashboard, also set as this process's (and its
    children's) ``RAY_API_SERVER_ADDRESS``. With several Rays on one machine, Ray Train's
    placement-group cleaner finds "its" Ray by auto-detection and may pick another one (trials
    then leak placement groups and sweeps hang); the pinned address makes every process ask its
    own."""
    port = _free_port()
    os.environ["RAY_API_SERVER_ADDRESS"] = f"http://{LOOPBACK}:{port}"
    return port


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).is_file()


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    include_dashboard: bool | None = None,
    object_store_memory: int | None = None,
    nodes: int = 1,
) -> None:
    """Connect to Ray, or start a local loopback-only Ray; a no-op when Ray is already up.

    Args:
        address: cluster address (``ray://host:10001``, ``host:6379``, ``auto``); default
            ``$RAY_ADDRESS``; with neither, a new local Ray is started.
        num_cpus: logical CPUs of the local Ray (default :func:`default_local_cpus`), of each
            node when ``nodes`` > 1; ignored, with a warning, when joining a cluster.
        nodes: local Ray only: more than 1 starts a simulated cluster of that many nodes on this
            machine (``ray.cluster_utils.Cluster``; no dashboard), shut down when the process
            exits, so that placement and data transfer between nodes are exercised.
        include_dashboard: local Ray only; ``None`` lets Ray decide (on when ``ray[default]`` is
            installed). Ray Tune around a ``TorchTrainer`` needs it on.
        object_store_memory: local Ray only, bytes.
    """
    # Ray reads these (and the authentication mode) when it is first imported: set them first.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if not sys.stderr.isatty():  # a log file, not a terminal: no redrawn progress bars in it
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    address = address or os.environ.get("RAY_ADDRESS")
    if "RAY_AUTH_MODE" not in os.environ and "ray" in sys.modules:
        # This process read Ray's default mode (disabled) when it imported ray; the Ray it starts
        # or joins must use the same one, or the driver cannot talk to it.
        log.warning("ray was imported before init_ray: token authentication stays off for this Ray")
        os.environ["RAY_AUTH_MODE"] = "disabled"
    elif address:
        os.environ.setdefault("RAY_AUTH_MODE", "token" if _token_available() else "disabled")
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    if ray.is_initialized():
        return
    if address:
        if num_cpus is not None or object_store_memory is not None:
            log.warning("joining the Ray cluster at %s: num_cpus/object_store_memory are ignored", address)
        ray.init(address=address)
        return
    if nodes > 1:
        _start_simulated_cluster(nodes, default_local_cpus() if num_cpus is None else num_cpus, object_store_memory)
        return
    dashboard_port = _pin_dashboard()
    ray.init(
        address="local",
        num_cpus=default_local_cpus() if num_cpus is None else num_cpus,
        object_store_memory=object_store_memory,
        include_dashboard=include_dashboard,
        dashboard_port=dashboard_port,
        dashboard_host=LOOPBACK,
        _node_ip_address=LOOPBACK,
    )
    if ray.util.get_node_ip_address() != LOOPBACK:
        log.warning(
            "the local Ray bound to %s, not %s: `ray` was imported before "
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set. Set it in the environment, or call "
            "init_ray before importing ray.",
            ray.util.get_node_ip_address(),
            LOOPBACK,
        )


def _start_simulated_cluster(nodes: int, cpus_per_node: int, object_store_memory: int | None) -> None:
    """Start ``nodes`` Ray nodes on loopback (``ray.cluster_utils.Cluster``), connect this process
    to them, and stop them at exit (only them: never ``ray stop``)."""
    import atexit

    import ray
    from ray.cluster_utils import Cluster

    node: dict[str, Any] = {"num_cpus": cpus_per_node, "node_ip_address": LOOPBACK}
    if object_store_memory is not None:  # else Ray's default (Cluster's own is 150 MiB)
        node["object_store_memory"] = object_store_memory
    dashboard_port = _pin_dashboard()
    head = {**node, "include_dashboard": True, "dashboard_port": dashboard_port, "dashboard_host": LOOPBACK}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(nodes - 1):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    atexit.register(cluster.shutdown)
    atexit.register(ray.shutdown)  # runs first: atexit calls in reverse order
