"""Offline validation of the Ray cluster-launcher YAMLs in ``cluster/``.

:func:`validate_cluster_yaml` runs, without network or cloud credentials:

1. ``jsonschema`` against ``ray-schema.json`` shipped inside the installed ``ray`` package;
2. Ray's own ``prepare_config`` (merges the provider's defaults, as ``ray up`` does before anything
   else) and ``validate_config`` (which needs the prepared file: it fails on the raw one). The step
   after these in ``ray up``, the provider's ``bootstrap_config``, is skipped on purpose: it calls
   the cloud (boto3 / the Google API client) to look up subnets, IAM roles and key pairs;
3. this project's rules: pinned versions in the setup commands of every node that does not run
   MuNet's image (``cluster/Dockerfile``), no installer piped from the network into a shell unless
   its URL names a version, no Ray port open to the whole internet, Ray started with token
   authentication on every node (and the token mounted there), object-storage URIs set, no
   credential in the file, no fallback to Ray's default AWS image, containers (Ray's ``docker``
   section) started from a fixed image tag, with the GPUs and with a ``/dev/shm`` large enough on
   GPU nodes, and (on request) no ``REPLACE_ME`` placeholder left.

Each problem is one line that starts with its category (``schema:``, ``ray:``, ``pins:``,
``security:``, ``storage:``, ``credentials:``, ``image:``, ``docker:``, ``placeholder:``,
``installer:``).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import re
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema
import yaml

PINNED_REQUIREMENTS = ("torch==2.12.1", "torchvision==0.27.1", "easypytorch3d==0.7.9.post1")
"""Exact pins every node must install (the same as ``pyproject.toml``): PyPI's only PyTorch3D build
(``easypytorch3d``) is compiled against this torch, and other torch versions fail to import it."""
RAY_VERSION = "2.60.0"
RAY_EXTRAS = frozenset({"default", "train", "tune", "data"})
"""``ray[...]`` must be pinned to :data:`RAY_VERSION` with at least these extras (``default`` gives
the dashboard and ``ray job submit``)."""

RAY_PORTS = (
    ("GCS", 6379, 6379),
    ("object manager", 8076, 8076),
    ("dashboard", 8265, 8265),
    ("Ray Client", 10001, 10001),
    ("worker", 10002, 19999),
    ("dashboard agent", 52365, 52365),
)
"""(name, first, last) of the ports a Ray node listens on with the start commands in ``cluster/``."""

STORAGE_KEYS = {
    "data_uri": "where the WebDataset shards are (--data of the jobs)",
    "runs_uri": "where training runs write checkpoints and logs (jobs/train.py --out)",
    "sweeps_uri": "where sweeps write their results (sweeps/tune_mutual.py --out)",
}
"""The keys of the ``metadata.munet`` mapping of a cluster YAML, and what each one names."""
STORAGE_SCHEMES = {"aws": ("s3://",), "gcp": ("gs://",)}
"""Object-storage schemes each cloud provider's nodes can write to with their instance identity."""

TOKEN_FILE = "~/.ray/auth_token"
"""Where Ray reads its authentication token by default, on the operator's machine and on the nodes
(``ray get-auth-token --generate`` writes it; the YAMLs mount it onto every node)."""

PLACEHOLDER = "REPLACE_ME"
"""Marker of every value in ``cluster/*.yaml`` that the user must edit before ``ray up``."""

RAY_IMAGE_OWNER = "rayproject"
"""Docker Hub owner of Ray's own images (``rayproject/ray:<version>-py<XY>-gpu`` ...): they hold Ray
only, so a node running one still needs the pinned installs in its setup commands; MuNet's image,
built ``FROM`` one of them by ``cluster/Dockerfile``, holds everything."""
MIN_SHM_GIB_PER_GPU = 4
"""Least ``--shm-size`` per GPU of a node when a YAML sets it: Ray's object store lives in
``/dev/shm``, and Ray Data keeps each training worker's prefetched batches in it (Docker's default
is 64 MB; left unset, Ray sizes it for the object store from the node's memory)."""

_CREDENTIAL_PATTERNS = (
    (re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (
        re.compile(
            r"\b(aws_secret_access_key|aws_session_token|aws_access_key_id|gcp_credentials"
            r"|private_key_id|private_key|client_secret|password)\b[\"']?\s*[:=]",
            re.IGNORECASE,
        ),
        "a credential field",
    ),
)
_PIPED_INSTALLER = re.compile(r"\b(?:curl|wget)\b[^|;&]*?(\S+://\S+)[^|;&]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b")
"""A download piped into a shell; group 1 is the URL."""
_VERSION_IN_URL = re.compile(r"/v?\d+\.\d+(?:\.\d+)?/")
"""A version as a path segment of a URL (``https://astral.sh/uv/0.9.5/install.sh``)."""
_SETUP_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands")
_REQUIREMENT = r"(?<![\w.-]){}(?![\w.])"
"""A requirement specifier standing alone in a command (not part of a longer name or version)."""


def ray_schema() -> dict[str, Any]:
    """The JSON schema of cluster-launcher YAMLs that ships inside the installed ``ray`` package."""
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def storage_uris(config: dict[str, Any]) -> dict[str, str]:
    """The object-storage locations a cluster YAML declares under ``metadata.munet``.

    Returns:
        The string values of :data:`STORAGE_KEYS` that are present (missing keys are left out).
    """
    metadata = config.get("metadata")
    section = metadata.get("munet") if isinstance(metadata, dict) else None
    if not isinstance(section, dict):
        return {}
    return {key: section[key] for key in STORAGE_KEYS if isinstance(section.get(key), str)}


def load_cluster_yaml(path: str | Path) -> dict[str, Any]:
    """Read a cluster YAML.

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is not YAML, or its top level is not a mapping.
    """
    try:
        config = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the top level must be a mapping, got {type(config).__name__}")
    return config


def validate_cluster_yaml(path: str | Path, *, allow_placeholders: bool = True) -> list[str]:
    """Check one cluster-launcher YAML offline (see the module docstring for the steps).

    Args:
        path: the YAML file.
        allow_placeholders: if False, every value still containing ``REPLACE_ME`` is a problem
            (use before ``ray up``; the files in ``cluster/`` ship with placeholders).

    Returns:
        One message per problem; empty when the file is fine. Ray's and this project's checks only
        run on a file that passes the schema.
    """
    try:
        text = Path(path).read_text()
        config = load_cluster_yaml(path)
    except (OSError, ValueError) as error:
        return [f"yaml: {error}"]
    problems = _schema_problems(config)
    if not problems:
        prepared, problems = _ray_problems(config)
        if prepared is not None:
            problems += _pin_problems(prepared)
            problems += _ingress_problems(config)
            problems += _auth_problems(config)
            problems += _storage_problems(config)
            problems += _image_problems(prepared)
            problems += _docker_problems(prepared)
            problems += _installer_problems(prepared)
    problems += _credential_problems(text)
    if not allow_placeholders:
        problems += _placeholder_problems(config)
    return problems


def _schema_problems(config: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(ray_schema())
    errors = sorted(validator.iter_errors(config), key=lambda error: list(error.absolute_path))
    return [f"schema: {_dotted(error.absolute_path) or '<top level>'}: {_shorten(error.message)}" for error in errors]


def _ray_problems(config: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """Ray's ``prepare_config`` then ``validate_config``; the prepared config is None on failure."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    autoscaler_logger = logging.getLogger("ray.autoscaler")  # quiet its INFO lines about defaults
    level = autoscaler_logger.level
    autoscaler_logger.setLevel(logging.WARNING)
    try:
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
    # Ray raises many types here (ValueError, RuntimeError, AssertionError, click's exceptions from
    # cli_logger.abort, jsonschema's ValidationError...): each one is a problem to report.
    except Exception as error:  # noqa: BLE001
        return None, [f"ray: {type(error).__name__}: {_shorten(str(error))}"]
    finally:
        autoscaler_logger.setLevel(level)
    return prepared, []


class _Container(NamedTuple):
    """The container a node runs Ray in, as Ray's launcher starts it from the ``docker`` section."""

    image: str
    options: list[str]
    """The ``docker run`` options, split into words (``--gpus all`` is two)."""
    sizes_shm: bool
    """Whether Ray sizes ``/dev/shm`` itself when no ``--shm-size`` is given."""


def _node_roles(prepared: dict[str, Any]) -> list[tuple[str, str]]:
    """``(node type, "head" or "worker")`` for every role a node type can take in the cluster."""
    roles = []
    for name, node_type in prepared["available_node_types"].items():
        if name == prepared["head_node_type"]:
            roles.append((name, "head"))
        if node_type.get("max_workers", 0) > 0:
            roles.append((name, "worker"))
    return roles


def _container(prepared: dict[str, Any], name: str, role: str) -> _Container | None:
    """The container of node type ``name`` in ``role``; None when its nodes run Ray without Docker.

    As in Ray's launcher, a node type's own ``docker`` keys (``worker_image``,
    ``worker_run_options``) replace the global ones, and the role's run options follow the shared
    ``run_options``."""
    docker = dict(prepared.get("docker") or {})
    if role == "worker":
        docker.update(prepared["available_node_types"][name].get("docker") or {})
    if not docker.get("container_name"):
        return None
    options = [str(option) for option in [*docker.get("run_options", []), *docker.get(f"{role}_run_options", [])]]
    return _Container(
        image=str(docker.get(f"{role}_image") or docker.get("image") or ""),
        options=shlex.split(" ".join(options)),
        sizes_shm=not docker.get("disable_shm_size_detection", False),
    )


def _pin_problems(prepared: dict[str, Any]) -> list[str]:
    """The effective setup commands of every node must install the pinned versions, unless the node
    runs an image other than Ray's own (MuNet's image has them from ``pyproject.toml``)."""
    problems = []
    for name, role in _node_roles(prepared):
        container = _container(prepared, name, role)
        if container is not None and not _is_ray_image(container.image):
            continue
        if role == "head":
            commands = prepared["head_setup_commands"]
        else:
            # A node type's own worker_setup_commands replace the global setup + worker setup.
            node_type = prepared["available_node_types"][name]
            commands = node_type.get("worker_setup_commands", prepared["worker_setup_commands"])
        missing = _missing_pins(" ".join(commands))
        if missing:
            problems.append(
                f"pins: setup commands of {role} node type '{name}' do not install "
                f"{', '.join(missing)} (PyTorch3D's registry build needs exactly this torch; "
                "keep them equal to pyproject.toml, or run the node in MuNet's image built from cluster/Dockerfile)"
            )
    return problems


def _docker_problems(prepared: dict[str, Any]) -> list[str]:
    """Containers must come from a fixed image tag, and a GPU node's container must get its GPUs and
    a ``/dev/shm`` that holds Ray's object store."""
    problems = []
    images = []
    for name, role in _node_roles(prepared):
        container = _container(prepared, name, role)
        if container is None:
            continue
        if container.image not in images:
            images.append(container.image)
        gpus = prepared["available_node_types"][name].get("resources", {}).get("GPU", 0)
        if gpus > 0:
            problems += _gpu_container_problems(name, role, gpus, container)
    return [problem for image in images if (problem := _moving_tag_problem(image))] + problems


def _moving_tag_problem(image: str) -> str | None:
    """Why ``image`` may change under the cluster (no tag, or ``latest``), or None if it is fixed."""
    if "@" in image:  # pinned by digest
        return None
    name = image.rsplit("/", 1)[-1]
    tag = name.rsplit(":", 1)[1] if ":" in name else ""
    if tag and tag != "latest":
        return None
    what = "uses the moving tag :latest" if tag else "has no tag (Docker reads it as :latest)"
    return (
        f"docker: image {image!r} {what}: every node pulls it when it starts, so a node launched later would "
        "run whatever the tag points to by then and the cluster would mix versions; push each build under its "
        "own tag (`make image`, docs/cluster.md) and name that tag"
    )


def _gpu_container_problems(name: str, role: str, gpus: int, container: _Container) -> list[str]:
    """A GPU node's container needs ``--gpus`` (or the NVIDIA runtime) and enough ``/dev/shm``."""
    where = f"docker.{role}_run_options (a node type's own list, if it has one: it replaces the global one)"
    problems = []
    runtimes = _option_values(container.options, "--runtime")
    if not _option_values(container.options, "--gpus") and "nvidia" not in runtimes:
        problems.append(
            f"docker: node type '{name}' has {gpus} GPU(s), but its container starts without --gpus: add "
            f"`--gpus all` to {where}; Ray adds --runtime=nvidia by itself only when the host's `docker info` "
            "lists the NVIDIA runtime and nvidia-smi runs, otherwise Ray sees no GPU there"
        )
    least = gpus * MIN_SHM_GIB_PER_GPU
    shm = _option_values(container.options, "--shm-size")
    if shm:
        size = _docker_bytes(shm[-1])
        if size is None:
            problems.append(f"docker: node type '{name}': --shm-size {shm[-1]!r} is not a size Docker reads (e.g. 64g)")
        elif size < least * 2**30:
            problems.append(
                f"docker: node type '{name}' gives its container --shm-size {shm[-1]} ({size / 2**30:.1f} GiB), less "
                f"than {least} GiB for {gpus} GPU(s) ({MIN_SHM_GIB_PER_GPU} GiB each): Ray's object store lives in "
                "/dev/shm and Ray Data keeps every training worker's prefetched batches there; raise it, or drop "
                "--shm-size to let Ray size /dev/shm from the node's memory"
            )
    elif "host" not in _option_values(container.options, "--ipc") and not container.sizes_shm:
        problems.append(
            f"docker: node type '{name}' turns Ray's /dev/shm sizing off (disable_shm_size_detection) without "
            f"--shm-size: Docker's default 64 MB cannot hold Ray's object store; give --shm-size (at least "
            f"{MIN_SHM_GIB_PER_GPU} GiB per GPU) in {where}, or drop disable_shm_size_detection"
        )
    return problems


def _option_values(words: list[str], flag: str) -> list[str]:
    """The values given to ``flag`` in ``docker run`` words, as ``--flag value`` or ``--flag=value``."""
    values = []
    for index, word in enumerate(words):
        if word == flag and index + 1 < len(words):
            values.append(words[index + 1])
        elif word.startswith(flag + "="):
            values.append(word[len(flag) + 1 :])
    return values


def _docker_bytes(size: str) -> int | None:
    """Bytes of a Docker memory size (``64m``, ``16g``, ``1.5GiB``, ``123b``); None if unreadable."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?", size, re.IGNORECASE)
    if not match:
        return None
    return int(float(match.group(1)) * 1024 ** " kmgtp".index(match.group(2).lower() or " "))


def _is_ray_image(image: str) -> bool:
    """Whether ``image`` is one of Ray's own images (``[registry/]rayproject/<name>[:tag]``)."""
    return image.split("@", 1)[0].split("/")[-2:-1] == [RAY_IMAGE_OWNER]


def _installer_problems(prepared: dict[str, Any]) -> list[str]:
    """A script piped from the network into a shell must be a fixed version: an unpinned
    ``curl … | sh`` runs whatever the server sends that day on every new or replaced node. One
    problem per URL (Ray copies the global setup commands into the head's and workers')."""
    commands = [command for key in _SETUP_KEYS for command in prepared.get(key) or []]
    for node_type in prepared["available_node_types"].values():
        commands += node_type.get("worker_setup_commands") or []
    urls = {url for command in commands for url in _PIPED_INSTALLER.findall(command)}
    return [
        f"installer: the setup commands pipe {url} into a shell without a version in its URL; "
        "pin the installer's version (e.g. https://astral.sh/uv/0.9.5/install.sh)"
        for url in sorted(urls)
        if not _VERSION_IN_URL.search(url)
    ]


def _missing_pins(commands: str) -> list[str]:
    missing = [pin for pin in PINNED_REQUIREMENTS if not re.search(_REQUIREMENT.format(re.escape(pin)), commands)]
    ray_pins = re.findall(_REQUIREMENT.format(r"ray\[([\w,\s-]*)\]==([\w.]+)"), commands)
    if not any(version == RAY_VERSION and RAY_EXTRAS <= _extras(extras) for extras, version in ray_pins):
        missing.append(f"ray[{','.join(sorted(RAY_EXTRAS))}]=={RAY_VERSION}")
    return missing


def _extras(text: str) -> set[str]:
    return {extra.strip() for extra in text.split(",") if extra.strip()}


def _ingress_problems(config: dict[str, Any]) -> list[str]:
    """AWS security-group rules must not open a Ray port to the whole internet (IPv4 or IPv6)."""
    rules = (config["provider"].get("security_group") or {}).get("IpPermissions") or []
    problems = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            problems.append(f"security: provider.security_group.IpPermissions[{index}] is not a mapping")
            continue
        ports = _rule_ports(rule)
        exposed = [
            f"{name} {first}" if first == last else f"{name} {first}-{last}"
            for name, first, last in RAY_PORTS
            if ports is not None and first <= ports[1] and ports[0] <= last
        ]
        world = [cidr for cidr in _rule_sources(rule) if _is_whole_internet(cidr)]
        if exposed and world:
            problems.append(
                f"security: provider.security_group.IpPermissions[{index}] opens Ray ports "
                f"({', '.join(exposed)}) to {', '.join(world)}: anyone could run code on the cluster. "
                "Ray already allows all traffic between the group's members; reach the dashboard "
                "and job API through `ray dashboard <cluster.yaml>` (SSH port forwarding)"
            )
    return problems


def _auth_problems(config: dict[str, Any]) -> list[str]:
    """Ray must start with token authentication on every node, and the token must reach the nodes.

    Without it anyone who reaches a Ray port (a colleague's machine in the VPC, a process on a
    node) can submit jobs, that is run code, on the cluster."""
    problems = []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        commands = " ".join(config.get(key) or [])
        if not re.search(r"\bRAY_AUTH_MODE=token\b", commands):
            problems.append(
                f"security: {key} start Ray without token authentication: export RAY_AUTH_MODE=token before "
                "`ray start` (every node must agree), so that the dashboard, job API and GCS accept only "
                "holders of the cluster's token"
            )
    mounted = any(str(remote).rstrip("/").endswith(".ray/auth_token") for remote in config.get("file_mounts") or {})
    commands = " ".join(
        str(c) for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in config.get(key) or []
    )
    if not mounted and "RAY_AUTH_TOKEN_PATH=" not in commands:
        problems.append(
            f"security: the authentication token never reaches the nodes: add `{TOKEN_FILE}: {TOKEN_FILE}` to "
            "file_mounts (create it first with `ray get-auth-token --generate`), or point RAY_AUTH_TOKEN_PATH "
            "at a token file the nodes have"
        )
    return problems


def _rule_ports(rule: dict[str, Any]) -> tuple[int, int] | None:
    """(first, last) port of an EC2 IpPermission; None for protocols without ports (ICMP)."""
    protocol = str(rule.get("IpProtocol", "-1")).lower()
    if protocol in ("-1", "all"):
        return 0, 65535
    if protocol not in ("tcp", "udp", "6", "17"):
        return None
    try:
        first, last = int(rule.get("FromPort", 0)), int(rule.get("ToPort", 65535))
    except (TypeError, ValueError):  # unreadable ports: assume the worst
        return 0, 65535
    return (0, 65535) if first == -1 else (first, last)


def _rule_sources(rule: dict[str, Any]) -> list[str]:
    ranges = [(entry, "CidrIp") for entry in rule.get("IpRanges") or []]
    ranges += [(entry, "CidrIpv6") for entry in rule.get("Ipv6Ranges") or []]
    return [str(entry.get(key, "")) for entry, key in ranges if isinstance(entry, dict)]


def _is_whole_internet(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:  # a placeholder or a typo: not an address range, so not the internet
        return False


def _storage_problems(config: dict[str, Any]) -> list[str]:
    """``metadata.munet`` must name where shards, runs and sweeps live, in storage every node reaches."""
    provider = config["provider"]["type"]
    uris = {key: uri.strip() for key, uri in storage_uris(config).items()}
    problems = [
        f"storage: metadata.munet.{key} is not set: give {meaning}"
        for key, meaning in STORAGE_KEYS.items()
        if not uris.get(key)
    ]
    for key, uri in uris.items():
        reason = _storage_uri_problem(uri, provider) if uri else None
        if reason:
            problems.append(f"storage: metadata.munet.{key} = {uri!r} {reason}")
    return problems


def _storage_uri_problem(uri: str, provider: str) -> str | None:
    """Why ``uri`` cannot hold this project's data on ``provider``'s nodes, or None if it can."""
    schemes = STORAGE_SCHEMES.get(provider)
    if schemes:
        if uri.startswith(schemes):
            return None
        return (
            f"is not on {provider}'s object storage ({' or '.join(schemes)}): the nodes' instance "
            "identity can only reach that"
        )
    if uri.startswith("/") or re.match(r"^[a-z][a-z0-9+.-]*://", uri):
        return None
    return (
        "must be an absolute path on storage shared by all nodes, or an object-storage URI "
        "(s3://, gs://, ...): Ray Train needs an absolute storage_path that every worker can write"
    )


def _image_problems(prepared: dict[str, Any]) -> list[str]:
    """AWS nodes must name their image: Ray's fallback AMI has a driver too old for CUDA 13."""
    if prepared["provider"]["type"] != "aws":
        return []
    return [
        f"image: node type '{name}' has no ImageId (or `latest_dlami`): Ray would use its built-in "
        "Ubuntu 18.04 Deep Learning AMI, whose NVIDIA driver is far older than the >= 580 that "
        "torch 2.12.1 (CUDA 13) needs; set the id of a current Deep Learning Base AMI for your region"
        for name, node_type in prepared["available_node_types"].items()
        if str(node_type["node_config"].get("ImageId", "")).lower() in ("", "latest_dlami")
    ]


def _credential_problems(text: str) -> list[str]:
    """Secrets never belong in a cluster file; the message names the line, never the secret."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        what = next((what for pattern, what in _CREDENTIAL_PATTERNS if pattern.search(line)), None)
        if what:
            problems.append(
                f"credentials: line {number} holds {what}: remove it and let the nodes use IAM "
                "instance profiles / service accounts referenced by name (and the laptop its own "
                "CLI login)"
            )
    return problems


def _placeholder_problems(config: dict[str, Any]) -> list[str]:
    """Values still containing :data:`PLACEHOLDER`, each listed once with every place it occurs."""
    places: dict[str, list[str]] = defaultdict(list)
    for path, value in _strings(config):
        if PLACEHOLDER in value:
            places[value].append(_dotted(path))
    return [
        f"placeholder: {value!r} (at {', '.join(paths)}) must be edited before `ray up`"
        for value, paths in places.items()
    ]


def _strings(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string in a YAML tree with its path of keys and list indices."""
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _strings(value, (*path, key))]
    if isinstance(node, list):
        return [item for index, value in enumerate(node) for item in _strings(value, (*path, index))]
    return [(path, node)] if isinstance(node, str) else []


def _dotted(path: Any) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _shorten(message: str, limit: int = 300) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."
