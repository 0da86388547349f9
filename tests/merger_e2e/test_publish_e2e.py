"""Publishing, end to end: no remote (the real `baro run` CLI), and a remote with a fake gh."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from baro_shared import redact
from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git, snapshot
from tests.e2e.conftest import replay, request_for, run_to_end

BARO = str(Path(sys.executable).parent / "baro")
FILES = {"app.py": "print('helo')\n", "README.md": "# app\n"}
SCRIPT = {
    "default": {
        "steps": [
            {"write": "app.py", "content": "print('hello')\n"},
            {"write": "prd.json", "content": '{"passes": true}\n'},
            {"usage": {"input": 400, "cached": 600, "output": 70}},
        ]
    }
}
FAKE_GH = """#!/bin/sh
# stands in for the GitHub CLI: logged in; records the pull request it is asked to open
printf '%s\\n' "$*" >> "{log}.args"
case "$1 $2" in
  "auth status") exit 0;;
  "pr create") cat > "{log}.body"; echo "https://github.com/acme/app/pull/42"; exit 0;;
esac
exit 1
"""


def test_no_remote_and_publish_pr_delivers_locally_with_one_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    (tmp_path / "script.json").write_text(json.dumps(SCRIPT))
    before = snapshot(repo)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GH_TOKEN", "GITHUB_TOKEN", "GH_HOST", "GITHUB_API_URL")
    }
    env.update(BARO_CACHE_DIR=str(tmp_path / "cache"), BARO_STATE_DIR=str(tmp_path / "state"))
    out = subprocess.run(
        [BARO, "run", "fix the typo in app.py", "--backend", "scripted", "--yes",
         "--script", str(tmp_path / "script.json"), "--publish", "pr"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip

    assert out.returncode == 0, out.stderr
    branch = re.search(r"^branch: (baro/\S+)", out.stdout, re.MULTILINE)
    assert branch is not None, out.stdout
    assert run_git(repo, "rev-parse", "--verify", branch.group(1))
    note = (
        f"{branch.group(1)} is in your repository only: it has no remote, so nothing was published"
    )
    both = out.stdout + out.stderr
    assert [line for line in both.splitlines() if note in line] != []
    assert len([line for line in both.splitlines() if "nothing was published" in line]) == 1
    assert "push" not in both.lower()
    # "tokens" appears only as the run's token counts, never as a credential complaint
    mentions = [line for line in both.splitlines() if "token" in line.lower()]
    assert all(re.search(r"\btokens(:| in \d)", line) for line in mentions), mentions
    for word in ("error", "traceback", "fatal", "gh_token", "credential"):
        assert word not in both.lower(), word
    assert snapshot(repo) == before


@pytest.fixture
def gh_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gh"
    (bin_dir / "gh").write_text(FAKE_GH.format(log=log))
    (bin_dir / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("GH_TOKEN", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    redact.refresh()
    assert shutil.which("gh") == str(bin_dir / "gh")
    return log


async def test_a_remote_and_gh_push_and_open_the_pull_request(
    gh_on_path: Path, bus: Bus, tmp_path: Path
) -> None:
    # gh is on PATH before baro starts, as a user's is: baro finds it then
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    bare = tmp_path / "remote.git"
    run_git(tmp_path, "init", "--quiet", "--bare", str(bare))
    run_git(repo, "remote", "add", "origin", str(bare))
    run_git(repo, "push", "--quiet", "origin", "main")
    run_git(repo, "fetch", "--quiet", "origin")
    request = request_for(
        repo, "fix the typo in app.py", SCRIPT, mode_request="focused", publish="pr"
    )
    # as `baro run` submits it from a checkout of main: the pull request's base
    request = msgspec.structs.replace(
        request, repo=msgspec.structs.replace(request.repo, ref="refs/heads/main")
    )

    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert run_git(bare, "rev-parse", report.branch) == run_git(repo, "rev-parse", report.branch)
    assert report.pr_url == "https://github.com/acme/app/pull/42"
    assert report.publish_note == (
        f"pushed {report.branch} to origin ({bare}) and opened https://github.com/acme/app/pull/42"
    )
    delivered = [e for e in await replay(bus, request.run_id) if isinstance(e, s.RunDelivered)]
    assert [d.published for d in delivered] == ["pr"]

    args = Path(f"{gh_on_path}.args").read_text().splitlines()
    assert args[-1] == (
        f"pr create --head {report.branch} --title fix the typo in app.py --body-file - --base main"
    )
    body = Path(f"{gh_on_path}.body").read_text()
    assert "**Mode:** focused, decided by flag" in body
    assert (
        "| story | title | status | duration | agent time | tokens in / cached / out | cost |"
        in body
    )
    row = re.search(
        r"^\| S1 \| Fix the typo in app\.py \| integrated \| ([\d.]+s) \| ([\d.]+s) \| "
        r"1,000 / 600 / 70 \| \$0\.0000 \|$",
        body,
        re.M,
    )
    assert row is not None, body
    assert "- `prd.json`" in body
    totals = body.split("## Totals", 1)[1]
    assert (
        "| tokens in | cached | out | cost | wall-clock | summed agent time | speedup |" in totals
    )
    figures = re.search(
        r"^\| 1,000 \| 600 \| 70 \| \$0\.0000 \| ([\d.]+)s \| ([\d.]+)s \| ([\d.]+)x \|$",
        totals,
        re.M,
    )
    assert figures is not None, totals
    wall, agent, speedup = (float(x) for x in figures.groups())
    # speedup is summed agent time over wall-clock (both shown to a tenth of a second)
    assert (
        (agent - 0.05) / (wall + 0.05) - 0.005 <= speedup <= (agent + 0.05) / (wall - 0.05) + 0.005
    )
