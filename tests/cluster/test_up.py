"""`baro up --cluster 3`: the same cluster for a user, from the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import make_repo, run_baro
from tests.faults.conftest import BARO

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(150)]


def test_baro_up_cluster_serves_a_run_on_three_servers(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
        "BARO_STATE_DIR": str(tmp_path / "state"),
        "BARO_LOG_LEVEL": "WARNING",
    }
    env.pop("BARO_NATS_URL", None)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [BARO, "up", "--cluster", "3"], env=env, stdout=out, stderr=out,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "export BARO_NATS_TOKEN" not in log.read_text() and time.monotonic() < deadline:
            assert up.poll() is None, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        url = re.search(r"export BARO_NATS_URL=(\S+)", text)
        token_file = re.search(r"export BARO_NATS_TOKEN=\$\(cat (\S+)\)", text)
        assert url and token_file, text
        assert len(url.group(1).split(",")) == 3
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
        assert len(pids) == 3

        repo = make_repo(tmp_path / "repo", {"app.py": "VALUE = 0\n"})
        script = tmp_path / "script.json"
        script.write_text(
            json.dumps({"default": {"steps": [{"write": "app.py", "content": "VALUE = 1\n"}]}})
        )
        client = {
            **env,
            "BARO_NATS_URL": url.group(1),
            "BARO_NATS_TOKEN": Path(token_file.group(1)).read_text().strip(),
        }
        done = run_baro(
            "submit", "set VALUE to 1 in app.py", "--repo", str(repo), "--backend", "scripted",
            "--script", str(script), "--watch", "--yes", "--json", env=client, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "delivered", done.stdout
    finally:
        up.send_signal(signal.SIGINT)
        rc = up.wait(timeout=60)
    assert rc == 0, log.read_text()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
