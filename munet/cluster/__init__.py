"""Ray clusters for MuNet: offline checks of the cluster-launcher YAMLs in ``cluster/``.

>>> validate_cluster_yaml("cluster/aws-gpu.yaml")        # [] when the file is fine
>>> storage_uris(load_cluster_yaml("cluster/aws-gpu.yaml"))["runs_uri"]

Command line (:mod:`munet.cluster.cli`): ``munet cluster validate cluster/*.yaml`` and
``eval "$(munet cluster env cluster/aws-gpu.yaml)"``. Launching, submitting jobs and
tearing down are described in ``docs/cluster.md``.
"""

from __future__ import annotations

from munet.cluster.validate import load_cluster_yaml, storage_uris, validate_cluster_yaml

__all__ = ["load_cluster_yaml", "storage_uris", "validate_cluster_yaml"]
