"""The local Ray the jobs start: loopback only and token-authenticated, so another user of a shared
machine cannot reach its jobs API."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os, urllib.error, urllib.request
from munet.ray_utils import init_ray
init_ray(num_cpus=1, include_dashboard=True)
import ray

@ray.remote
def add_one(x):
    return x + 1

def jobs_api(headers):
    request = urllib.request.Request(os.environ["RAY_API_SERVER_ADDRESS"] + "/api/jobs/", headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as error:
        return error.code

token = open(os.path.expanduser("~/.ray/auth_token")).read().strip()  # made by Ray if missing
print(json.dumps({"mode": os.environ["RAY_AUTH_MODE"], "task": ray.get(add_one.remote(1)),
                  "anonymous": jobs_api({}), "with_token": jobs_api({"Authorization": f"Bearer {token}"}),
                  "node_ip": ray.util.get_node_ip_address()}))
ray.shutdown()
"""


def test_the_local_ray_requires_a_token():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    }
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["mode"] == "token" and seen["task"] == 2  # Ray works for the job itself
    assert seen["anonymous"] == 401 and seen["with_token"] == 200  # only a caller with the token gets in
    assert seen["node_ip"] == "127.0.0.1"
