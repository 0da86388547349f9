"""`baro demo`: a sample repository, a goal, and the scripted test/demo agent, end to end."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from baro_cli import runflow, watching
from baro_cli.commands.run import _run, build_request
from baro_shared.gitutil import BARO_IDENTITY, git_sync
from baro_shared.settings import Settings

# README's first example: the demo leaves the branch its follow-up example continues
GOAL = "fix the off-by-one in countdown()"

COUNTDOWN_BUGGY = '''"""A tiny module with a bug for the baro demo."""


def countdown(n: int) -> list[int]:
    """Numbers from n down to 1."""
    return list(range(n, 1, -1))
'''

COUNTDOWN_FIXED = COUNTDOWN_BUGGY.replace("range(n, 1, -1)", "range(n, 0, -1)")

TEST = """from countdown import countdown

assert countdown(3) == [3, 2, 1], countdown(3)
assert countdown(0) == []
print("countdown ok")
"""

# What the scripted agent does for this goal (a real agent would work this out itself).
SCRIPT = {
    "default": {
        "steps": [
            {"text": "Reading countdown.py: range(n, 1, -1) stops before 1."},
            {"write": "countdown.py", "content": COUNTDOWN_FIXED},
            {"run": "python3 test_countdown.py"},
            {"text": "Fixed: countdown(3) now returns [3, 2, 1]."},
            {"usage": {"input": 1800, "cached": 1200, "output": 240}},
        ]
    }
}


def make_sample_repo(root: Path) -> Path:
    repo = root / "sample-repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("# sample\n\nA tiny project used by `baro demo`.\n")
    (repo / "countdown.py").write_text(COUNTDOWN_BUGGY)
    (repo / "test_countdown.py").write_text(TEST)
    env_args = (
        "-c",
        f"user.name={BARO_IDENTITY['GIT_AUTHOR_NAME']}",
        "-c",
        "user.email=demo@localhost",
    )
    git_sync("init", "--quiet", "--initial-branch=main", str(repo))
    git_sync("-C", str(repo), "add", "-A")
    git_sync("-C", str(repo), *env_args, "commit", "--quiet", "-m", "sample project")
    # an uncommitted change of "yours": baro must leave it exactly as it is
    (repo / "NOTES.txt").write_text("my uncommitted notes\n")
    return repo


def run_demo(*, keep: bool = True, as_json: bool = False) -> int:
    settings = Settings()
    root = Path(tempfile.mkdtemp(prefix="baro-demo-"))
    repo = make_sample_repo(root)
    script = root / "demo-script.json"
    script.write_text(json.dumps(SCRIPT, indent=2))
    print(f"sample repository: {repo}", file=sys.stderr)
    print(f"goal: {GOAL}", file=sys.stderr)
    request = build_request(
        GOAL,
        repo,
        "scripted",
        None,
        "auto",
        True,
        False,
        settings,
        None,
        None,
        None,
        600.0,
        120.0,
        "local",
        script,
    )
    shown = watching.Shown(quiet=False, as_json=as_json, events=False)
    report = asyncio.run(_run(request, settings, shown, None, embedded=True))
    shown.summary(report)
    if not as_json and report.branch:
        log = git_sync("-C", str(repo), "log", "--oneline", f"main..{report.branch}").out
        stat = git_sync("-C", str(repo), "diff", "--stat", f"main...{report.branch}").out
        print(f"\n$ git log --oneline main..{report.branch}\n{log}")
        print(f"$ git diff --stat main...{report.branch}\n{stat}")
        status = git_sync("-C", str(repo), "status", "--short").out
        print(f"$ git status --short   (your checkout, untouched)\n{status}")
    if not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return runflow.exit_code(report)
