"""Cluster-launcher YAMLs: the shipped ones pass Ray's schema, Ray's own checks and the project rules
offline; broken copies (open Ray ports, unpinned torch, containers without GPUs, schema errors, ...)
are reported clearly. The cluster image (cluster/Dockerfile) builds on Ray's image of the pinned Ray
and Python."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from munet.cluster import load_cluster_yaml, storage_uris, validate_cluster_yaml
from munet.cluster.cli import main
from munet.cluster.validate import MIN_SHM_GIB_PER_GPU, PINNED_REQUIREMENTS, RAY_EXTRAS, RAY_VERSION
from tests.conftest import REPO

CLUSTER_DIR = REPO / "cluster"
SHIPPED = sorted(CLUSTER_DIR.glob("*.yaml"))
AWS = CLUSTER_DIR / "aws-gpu.yaml"
GCP = CLUSTER_DIR / "gcp-gpu.yaml"
ONPREM = CLUSTER_DIR / "onprem.yaml"
DOCKERFILE = CLUSTER_DIR / "Dockerfile"
RAY_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311-gpu"
PINNED_INSTALL = (
    'pip install torch==2.12.1 torchvision==0.27.1 easypytorch3d==0.7.9.post1 "ray[default,train,tune,data]==2.60.0"'
)


def write_config(tmp_path, config, name="cluster.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_text(tmp_path, text, name="cluster.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def installed_per_node(source, setup=PINNED_INSTALL, image=None):
    """``source`` with its software installed by setup commands instead of MuNet's image: without
    Docker, or in Ray's own ``image`` (which holds Ray only)."""
    config = load_cluster_yaml(source)
    if image is None:
        del config["docker"]
        for node_type in config.get("available_node_types", {}).values():
            node_type.pop("docker", None)
    else:
        config["docker"]["image"] = image
    config["setup_commands"] = [setup]
    return config


def node_types_named(problems):
    return [re.search(r"node type '([\w.-]+)'", problem).group(1) for problem in problems]


def aws_with_rule(tmp_path, rule):
    config = load_cluster_yaml(AWS)
    config["provider"]["security_group"]["IpPermissions"].append(rule)
    return write_config(tmp_path, config)


def test_the_three_launchers_ship():
    assert [path.name for path in SHIPPED] == ["aws-gpu.yaml", "gcp-gpu.yaml", "onprem.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_cluster_yaml_passes(path):
    assert validate_cluster_yaml(path) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_cluster_yaml_only_lacks_its_placeholders(path):
    problems = validate_cluster_yaml(path, allow_placeholders=False)
    assert problems, "each shipped file has values the user must fill in"
    assert all(problem.startswith("placeholder:") for problem in problems), problems
    # Each placeholder names where it is, so the user can find it.
    assert any("metadata.munet.runs_uri" in problem for problem in problems)
    assert any("(at docker.image)" in problem for problem in problems)


def test_filled_in_aws_yaml_is_launch_ready(tmp_path):
    text = (
        AWS.read_text()
        .replace("REPLACE_ME_YOUR_PUBLIC_IP/32", "198.51.100.7/32")
        .replace("ami-REPLACE_ME", "ami-0example")
        .replace("REPLACE_ME-bucket", "my-munet-bucket")
        .replace("REPLACE_ME_ACCOUNT", "123456789012")
        .replace("REPLACE_ME_TAG", "0.1.0-5f837f9")
        .replace("subnet-REPLACE_ME", "subnet-0example")
        .replace("sg-REPLACE_ME", "sg-0example")
    )
    assert validate_cluster_yaml(write_text(tmp_path, text), allow_placeholders=False) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_ray_without_token_authentication_is_reported(tmp_path, path):
    disabled = path.read_text().replace("RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled")
    problems = validate_cluster_yaml(write_text(tmp_path, disabled))
    assert [p.split(" start Ray")[0] for p in problems] == [
        "security: head_start_ray_commands",
        "security: worker_start_ray_commands",
    ]
    assert "export RAY_AUTH_MODE=token" in problems[0]
    unmounted = load_cluster_yaml(path)
    del unmounted["file_mounts"]["~/.ray/auth_token"]
    problems = validate_cluster_yaml(write_config(tmp_path, unmounted))
    assert len(problems) == 1 and "the authentication token never reaches the nodes" in problems[0]
    assert "ray get-auth-token --generate" in problems[0]


def test_gcs_port_open_to_the_internet_is_reported(tmp_path):
    path = aws_with_rule(
        tmp_path, {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    )
    problems = validate_cluster_yaml(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith("security: provider.security_group.IpPermissions[1] opens Ray ports (GCS 6379)")
    assert "0.0.0.0/0" in problems[0] and "ray dashboard" in problems[0]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}, "GCS 6379, object manager 8076, dashboard 8265"),
        (
            {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            "(object manager 8076, dashboard 8265)",
        ),
        (
            {"IpProtocol": "tcp", "FromPort": 15000, "ToPort": 15000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            "(worker 10002-19999)",
        ),
    ],
    ids=["all-traffic-ipv6", "port-range", "worker-port"],
)
def test_any_rule_reaching_a_ray_port_from_anywhere_is_reported(tmp_path, rule, expected):
    problems = validate_cluster_yaml(aws_with_rule(tmp_path, rule))
    assert len(problems) == 1 and problems[0].startswith("security:") and expected in problems[0], problems


@pytest.mark.parametrize(
    "rule",
    [
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    ],
    ids=["ray-port-from-vpc", "non-ray-port", "icmp"],
)
def test_rules_that_keep_ray_ports_private_pass(tmp_path, rule):
    assert validate_cluster_yaml(aws_with_rule(tmp_path, rule)) == []


@pytest.mark.parametrize("image", [None, RAY_IMAGE], ids=["no-docker", "ray-image"])
def test_nodes_without_munet_image_pass_with_pinned_setup_commands(tmp_path, image):
    assert validate_cluster_yaml(write_config(tmp_path, installed_per_node(AWS, image=image))) == []


@pytest.mark.parametrize("image", [None, RAY_IMAGE], ids=["no-docker", "ray-image"])
def test_unpinned_torch_is_reported_for_every_node_type(tmp_path, image):
    config = installed_per_node(AWS, PINNED_INSTALL.replace("torch==2.12.1 ", "torch "), image=image)
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert node_types_named(problems) == ["head", "gpu-1x-spot", "gpu-4x", "gpu-8x-efa"]
    for problem in problems:
        assert problem.startswith("pins:") and "do not install torch==2.12.1 (" in problem
        assert "cluster/Dockerfile" in problem


def test_ray_without_the_needed_extras_is_reported(tmp_path):
    config = installed_per_node(
        GCP, PINNED_INSTALL.replace('"ray[default,train,tune,data]==2.60.0"', "ray[train]==2.60.0")
    )
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 4
    assert all("do not install ray[data,default,train,tune]==2.60.0" in problem for problem in problems)


def test_node_type_setup_commands_replace_the_global_ones_and_must_pin_too(tmp_path):
    config = installed_per_node(AWS, image=RAY_IMAGE)
    config["available_node_types"]["gpu-4x"]["worker_setup_commands"] = ["pip install torch easypytorch3d ray"]
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 1 and problems[0].startswith("pins: setup commands of worker node type 'gpu-4x'")
    for pin in ("torch==2.12.1", "torchvision==0.27.1", "easypytorch3d==0.7.9.post1", "ray[data,default,train,tune]"):
        assert pin in problems[0]


@pytest.mark.parametrize("path", [AWS, GCP, ONPREM], ids=lambda p: p.stem)
def test_an_unpinned_installer_piped_into_a_shell_is_reported(tmp_path, path):
    config = load_cluster_yaml(path)
    config["setup_commands"] = ["curl -LsSf https://astral.sh/uv/0.9.5/install.sh | sh"]
    assert validate_cluster_yaml(write_config(tmp_path, config)) == []  # a version in the URL
    config["setup_commands"] = ["curl -LsSf https://astral.sh/uv/install.sh | sh"]
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 1 and problems[0].startswith(
        "installer: the setup commands pipe https://astral.sh/uv/install.sh"
    )
    config["setup_commands"] = ["wget -qO- https://example.org/get.sh | sudo bash"]
    assert [p.split(" pipe ")[1].split()[0] for p in validate_cluster_yaml(write_config(tmp_path, config))] == [
        "https://example.org/get.sh"
    ]


@pytest.mark.parametrize(
    ("image", "what"),
    [
        ("registry.example.com/munet", "has no tag (Docker reads it as :latest)"),
        ("localhost:5000/munet", "has no tag (Docker reads it as :latest)"),
        ("registry.example.com/munet:latest", "uses the moving tag :latest"),
    ],
    ids=["untagged", "registry-port-untagged", "latest"],
)
def test_an_image_without_a_fixed_tag_is_reported(tmp_path, image, what):
    config = load_cluster_yaml(ONPREM)
    config["docker"]["image"] = image
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert problems == [
        f"docker: image {image!r} {what}: every node pulls it when it starts, so a node launched later would run "
        "whatever the tag points to by then and the cluster would mix versions; push each build under its own tag "
        "(`make image`, docs/cluster.md) and name that tag"
    ]


@pytest.mark.parametrize("image", ["localhost:5000/munet:0.1.0-5f837f9", "registry.example.com/munet@sha256:0123abcd"])
def test_a_fixed_tag_or_digest_passes(tmp_path, image):
    config = load_cluster_yaml(GCP)
    config["docker"]["image"] = image
    assert validate_cluster_yaml(write_config(tmp_path, config)) == []


def test_a_node_type_image_is_checked_too(tmp_path):
    config = load_cluster_yaml(AWS)
    config["available_node_types"]["gpu-8x-efa"]["docker"]["worker_image"] = "registry.example.com/munet-efa"
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 1 and problems[0].startswith("docker: image 'registry.example.com/munet-efa' has no tag")


def test_gpu_node_types_whose_container_gets_no_gpu_are_reported(tmp_path):
    config = load_cluster_yaml(AWS)
    config["docker"]["worker_run_options"] = []
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    # The 8-GPU type has its own worker_run_options, which replace the global list.
    assert node_types_named(problems) == ["gpu-1x-spot", "gpu-4x"]
    assert problems[0].startswith("docker: node type 'gpu-1x-spot' has 1 GPU(s), but its container starts without")
    assert "add `--gpus all` to docker.worker_run_options" in problems[0]
    config["docker"]["worker_run_options"] = ["--runtime=nvidia"]  # the NVIDIA runtime also gives the GPUs
    assert validate_cluster_yaml(write_config(tmp_path, config)) == []
    config["available_node_types"]["gpu-8x-efa"]["docker"]["worker_run_options"].remove("--gpus all")
    assert node_types_named(validate_cluster_yaml(write_config(tmp_path, config))) == ["gpu-8x-efa"]


@pytest.mark.parametrize(
    ("run_options", "expected"),
    [
        ([], ["gpu-1x-spot", "gpu-4x", "gpu-8x-efa"]),
        (["--shm-size=16g"], ["gpu-8x-efa"]),
        (["--shm-size", "32GiB"], []),
        (["--ipc=host"], []),
        (["--shm-size=lots"], ["gpu-1x-spot", "gpu-4x", "gpu-8x-efa"]),
    ],
    ids=["unsized", "too-small-for-8", "large-enough", "host-ipc", "unreadable"],
)
def test_gpu_node_types_without_room_in_dev_shm_are_reported(tmp_path, run_options, expected):
    config = load_cluster_yaml(AWS)
    config["docker"]["disable_shm_size_detection"] = True
    config["docker"]["run_options"] += run_options
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert node_types_named(problems) == expected
    assert all(problem.startswith("docker: node type") for problem in problems)
    if run_options == []:
        assert "turns Ray's /dev/shm sizing off (disable_shm_size_detection) without --shm-size" in problems[0]
    if run_options == ["--shm-size=16g"]:
        assert f"less than {8 * MIN_SHM_GIB_PER_GPU} GiB for 8 GPU(s)" in problems[0]
    if run_options == ["--shm-size=lots"]:
        assert "--shm-size 'lots' is not a size Docker reads" in problems[0]


def test_the_cloud_files_offer_8_gpu_nodes_with_a_fast_interconnect():
    aws = load_cluster_yaml(AWS)["available_node_types"]["gpu-8x-efa"]
    assert aws["resources"]["GPU"] == 8 and aws["node_config"]["InstanceType"] == "p4d.24xlarge"
    interfaces = aws["node_config"]["NetworkInterfaces"]
    assert sorted(interface["NetworkCardIndex"] for interface in interfaces) == [0, 1, 2, 3]
    assert all(interface["InterfaceType"] in ("efa", "efa-only") for interface in interfaces)
    assert "--env FI_PROVIDER=efa" in aws["docker"]["worker_run_options"]
    gcp = load_cluster_yaml(GCP)["available_node_types"]["gpu-8x-nvlink"]
    assert gcp["resources"]["GPU"] == 8 and gcp["node_config"]["machineType"] == "a2-highgpu-8g"


def test_the_image_builds_on_ray_s_gpu_image_of_the_pinned_ray_and_python():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = re.search(r">=(\d+)\.(\d+)", requires).groups()
    (base,) = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert base == f"rayproject/ray:{RAY_VERSION}-py{major}{minor}-gpu"
    for config in (load_cluster_yaml(path) for path in SHIPPED):
        assert config["docker"]["image"].rsplit("/", 1)[-1].startswith("munet:")


def test_unknown_top_level_key_is_a_schema_problem(tmp_path):
    config = load_cluster_yaml(GCP)
    config["max_worker"] = 4  # a typo of max_workers
    assert validate_cluster_yaml(write_config(tmp_path, config)) == [
        "schema: <top level>: Additional properties are not allowed ('max_worker' was unexpected)"
    ]


def test_wrong_type_is_a_schema_problem_with_its_path(tmp_path):
    config = load_cluster_yaml(AWS)
    config["available_node_types"]["gpu-1x-spot"]["resources"]["GPU"] = "one"
    assert validate_cluster_yaml(write_config(tmp_path, config)) == [
        "schema: available_node_types.gpu-1x-spot.resources.GPU: 'one' is not of type 'integer'"
    ]


@pytest.mark.parametrize(
    ("source", "edit", "expected"),
    [
        (
            AWS,
            lambda config: config.update(head_node_type="cpu-head"),
            "ray: ValueError: `head_node_type` must be one of `available_node_types`.",
        ),
        (
            GCP,
            lambda config: config["available_node_types"]["gpu-4x"].update(min_workers=9),
            "ray: ValueError: The specified global `max_workers` is smaller than the sum of `min_workers`",
        ),
        (
            ONPREM,
            lambda config: config["provider"].pop("head_ip"),
            "ray: ClickException: Please supply a `head_ip` and list of `worker_ips`.",
        ),
    ],
    ids=["unknown-head-type", "min-above-max", "onprem-without-head"],
)
def test_ray_own_checks_run_after_the_schema(tmp_path, source, edit, expected):
    config = load_cluster_yaml(source)
    edit(config)
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize(
    ("source", "key", "value", "expected"),
    [
        (AWS, "runs_uri", None, "storage: metadata.munet.runs_uri is not set: give where training runs write"),
        (
            AWS,
            "data_uri",
            "gs://bucket/shards",
            "storage: metadata.munet.data_uri = 'gs://bucket/shards' is not on aws's",
        ),
        (
            GCP,
            "sweeps_uri",
            "s3://bucket/sweeps",
            "storage: metadata.munet.sweeps_uri = 's3://bucket/sweeps' is not on gcp's",
        ),
        (
            ONPREM,
            "runs_uri",
            "shared/runs",
            "storage: metadata.munet.runs_uri = 'shared/runs' must be an absolute path",
        ),
    ],
    ids=["missing", "wrong-cloud-aws", "wrong-cloud-gcp", "relative-onprem"],
)
def test_storage_uris_must_be_set_and_reachable(tmp_path, source, key, value, expected):
    config = load_cluster_yaml(source)
    if value is None:
        del config["metadata"]["munet"][key]
    else:
        config["metadata"]["munet"][key] = value
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_onprem_storage_may_be_object_storage(tmp_path):
    config = load_cluster_yaml(ONPREM)
    config["metadata"]["munet"]["data_uri"] = "s3://lab-minio/munet/shards"
    assert validate_cluster_yaml(write_config(tmp_path, config)) == []


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        ("  aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRET\n", "a credential field"),
        ("  # key id AKIAZZZZZZZZZZZZZZZZ\n", "an AWS access key id"),
        ("  # -----BEGIN OPENSSH PRIVATE KEY-----\n", "a PEM private key"),
    ],
    ids=["secret-key", "access-key-id", "pem"],
)
def test_credentials_in_the_file_are_reported_without_echoing_them(tmp_path, snippet, what):
    text = AWS.read_text().replace("provider:\n", "provider:\n" + snippet, 1)
    line = text.splitlines().index(snippet.rstrip("\n")) + 1
    problems = validate_cluster_yaml(write_text(tmp_path, text))
    assert problems == [
        f"credentials: line {line} holds {what}: remove it and let the nodes use IAM instance profiles / "
        "service accounts referenced by name (and the laptop its own CLI login)"
    ]
    assert "SECRET" not in problems[0] and "AKIA" not in problems[0]


def test_gcp_credentials_field_of_ray_is_refused(tmp_path):
    config = load_cluster_yaml(GCP)
    config["provider"]["gcp_credentials"] = {"type": "credentials_token", "credentials": "ya29.token"}
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 1 and problems[0].startswith("credentials: line") and "ya29" not in problems[0]


@pytest.mark.parametrize("image_id", [None, "latest_dlami"], ids=["missing", "latest_dlami"])
def test_aws_node_without_its_own_image_is_reported(tmp_path, image_id):
    config = load_cluster_yaml(AWS)
    node_config = config["available_node_types"]["gpu-4x"]["node_config"]
    if image_id is None:
        del node_config["ImageId"]
    else:
        node_config["ImageId"] = image_id
    problems = validate_cluster_yaml(write_config(tmp_path, config))
    assert len(problems) == 1 and problems[0].startswith("image: node type 'gpu-4x' has no ImageId"), problems
    assert ">= 580" in problems[0]


def test_pins_match_the_package_requirements():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for pin in PINNED_REQUIREMENTS:
        assert pin in dependencies
    (ray,) = [dependency for dependency in dependencies if dependency.startswith("ray[")]
    extras, version = re.fullmatch(r"ray\[([\w,]+)\]==([\w.]+)", ray).groups()
    assert set(extras.split(",")) == RAY_EXTRAS and version == RAY_VERSION


def test_env_command_exports_the_storage_uris(capsys):
    assert main(["env", str(GCP)]) == 0
    uris = storage_uris(load_cluster_yaml(GCP))
    assert capsys.readouterr().out.splitlines() == [
        f"export MUNET_DATA={uris['data_uri']}",
        f"export MUNET_RUNS={uris['runs_uri']}",
        f"export MUNET_SWEEPS={uris['sweeps_uri']}",
    ]


def test_env_command_fails_on_a_missing_uri(tmp_path, capsys):
    config = load_cluster_yaml(AWS)
    del config["metadata"]["munet"]["sweeps_uri"]
    path = write_config(tmp_path, config)
    assert main(["env", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"{path}: metadata.munet lacks sweeps_uri\n"


def test_command_line_reports_each_file_and_fails_on_any_problem(tmp_path):
    bad = write_text(tmp_path, ONPREM.read_text().replace("munet:REPLACE_ME_TAG", "munet:latest"), name="bad.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "munet.cluster", "validate", *map(str, SHIPPED), str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [f"{path}: ok" for path in SHIPPED] == lines[: len(SHIPPED)]
    assert len(lines) == len(SHIPPED) + 1
    assert lines[-1].startswith(f"{bad}: docker: image 'REPLACE_ME-registry/munet:latest' uses the moving tag :latest")
    good = subprocess.run(
        [sys.executable, "-m", "munet.cluster", "validate", *map(str, SHIPPED)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert good.returncode == 0, good.stdout + good.stderr
