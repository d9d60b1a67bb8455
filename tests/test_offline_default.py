"""The CLI stays offline unless the user opts in: a real `alpharl train` makes no network lookup.

TRL sends a telemetry ping from every trainer's constructor through huggingface_hub unless offline mode or
HF_HUB_DISABLE_TELEMETRY is set, and the test suite sets HF_HUB_OFFLINE itself (conftest), which would hide
it. So the run happens in a fresh process with those variables (and CI, which TRL also honours) removed, and
with name resolution and outbound connections replaced by a recorder that refuses them.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.trainer.harness import REPO, test_model_dir

GUARD = """
import socket, sys, time
attempts = []
LOCAL = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
def getaddrinfo(host, *args, **kwargs):
    if host not in LOCAL:
        attempts.append(host)
        raise OSError("network blocked by the test")
    return real_getaddrinfo(host, *args, **kwargs)
real_getaddrinfo, socket.getaddrinfo = socket.getaddrinfo, getaddrinfo
from alpharl_trainer.cli import main
code = main(sys.argv[1:])
time.sleep(2)  # telemetry is sent from a background thread
print("LOOKUPS", sorted(set(map(str, attempts))))
sys.exit(code)
"""


def test_train_makes_no_network_lookup(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "CI")
    }
    args = ["train", "recipes/tiny/grpo.yaml", "--model_name_or_path", str(test_model_dir())]
    args += ["--output_dir", str(tmp_path / "run"), "--max_steps", "3", "--alpharl", "false"]
    args += ["--report_test_size", "0", "--train_size", "64", "--per_device_train_batch_size", "16"]
    proc = subprocess.run(
        [sys.executable, "-c", GUARD, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOOKUPS []" in proc.stdout, proc.stdout[-2000:]
