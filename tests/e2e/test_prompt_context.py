"""What `baro run` tells the agent about the goal, through the real CLI, its embedded NATS
and the scripted agent as a process (which records the prompt it got into the branch): a
vague goal comes with its smallest safe reading, and a `--continue` follow-up with the
earlier run's goal and the commits its branch holds."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_repo, run_git
from tests.scheduler.test_run_plan_file import baro

READING = "Make one small, behaviour-preserving cleanup in the most obvious spot"


def recording(path: str) -> str:
    steps = [{"record": path}, {"usage": {"input": 10, "output": 1}}]
    return json.dumps({"default": {"steps": steps}})


def prompt_on(repo: Path, branch: str, path: str) -> str:
    return json.loads(run_git(repo, "show", f"{branch}:{path}"))["prompt"]


def test_a_vague_goal_s_reading_and_a_follow_up_s_history_reach_the_agent(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "user", {"app.py": "VALUE = 1\n"})
    first_script = tmp_path / "first.json"
    first_script.write_text(recording("docs/first.md"))
    first = baro(
        "run", "make it better", "--yes", "--backend", "scripted",
        "--script", str(first_script), "--json", cwd=repo,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    branch = json.loads(first.stdout)["branch"]
    prompt = prompt_on(repo, branch, "docs/first.md")
    assert "Goal of the whole run: make it better" in prompt
    assert f"this reading is the whole task: {READING}" in prompt
    assert "follows up" not in prompt

    second_script = tmp_path / "second.json"
    second_script.write_text(recording("docs/second.md"))
    commits = run_git(repo, "log", "--format=%h %s", branch, "--not", "HEAD").splitlines()
    assert commits, "the first run left a commit on its branch"
    second = baro(
        "run", "also describe the change in docs/second.md", "--continue", branch,
        "--backend", "scripted", "--script", str(second_script), "--json", cwd=repo,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["branch"] == branch
    prompt = prompt_on(repo, branch, "docs/second.md")
    lines = prompt.splitlines()
    earlier = lines.index("Earlier goals of this branch (oldest first):")
    assert lines[earlier + 1] == "- make it better"
    listed = lines.index("The branch's commits (newest first):")
    assert lines[listed + 1 : listed + 1 + len(commits)] == [f"- {c}" for c in commits]
    assert "this reading is the whole task" not in prompt, "the follow-up's goal is not vague"
