"""`baro plan`: the accepted plan and its enforcement notes, offline, as the real CLI prints it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo

BARO = str(Path(sys.executable).parent / "baro")
STORY_FIELDS = ["id", "title", "description", "depends_on", "write_surface", "acceptance"]
FILES = {"src/app/a.py": "A = 1\n", "src/app/b.py": "B = 2\n", "README.md": "# app\n"}


def baro(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "BARO_STATE_DIR": str(cwd / "state"),
        "BARO_CACHE_DIR": str(cwd / "cache"),
        # no agent CLI on this machine: planning must not need one
        "BARO_BACKEND": "claude",
        "BARO_CLAUDE_BIN": "/nonexistent/claude",
        **(env or {}),
    }
    return subprocess.run(
        [BARO, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
    )


def write_plan(path: Path, stories: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"stories": stories}))
    return path


def one_line_error(out: subprocess.CompletedProcess[str], needle: str) -> None:
    assert out.returncode == 2, out
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert needle in lines[0], lines[0]


def test_a_goal_is_planned_offline_with_the_repository_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    out = baro("plan", "add type hints to a.py and b.py", "--json", cwd=repo)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["mode"] == "parallel" and plan["mode_source"] == "intake"
    assert plan["planner"] == "deterministic"
    assert [list(st) for st in plan["stories"]] == [STORY_FIELDS, STORY_FIELDS]
    assert [st["write_surface"] for st in plan["stories"]] == [["src/app/a.py"], ["src/app/b.py"]]
    assert plan["enforcement"] == []


def test_repo_option_and_text_output(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = baro("plan", "add type hints to a.py and b.py", "--repo", str(repo), cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("mode: parallel — decided by intake")
    assert "S1  Add type hints to a.py" in out.stdout
    assert "writes: src/app/a.py" in out.stdout


def test_a_free_form_goal_without_a_model_is_one_story_with_the_reason(tmp_path: Path) -> None:
    out = baro("plan", "make the parser faster", "--mode", "parallel", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["mode"] == "sequential" and len(plan["stories"]) == 1
    assert plan["enforcement"] == [
        "the goal states no steps or units to split along; planned as one story",
        "parallel mode needs two stories that can run side by side, but the plan has a single "
        "story; running as sequential",
    ]


def test_the_json_output_reads_back_as_a_plan_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    first = baro("plan", "add type hints to a.py and b.py", "--json", cwd=repo)
    saved = tmp_path / "plan.json"
    saved.write_text(first.stdout)
    again = baro("plan", "--plan-file", str(saved), "--mode", "parallel", "--json", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["stories"] == json.loads(first.stdout)["stories"]


def test_a_plan_file_is_enforced_for_its_mode(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path / "plan.json",
        [
            {"id": "A", "title": "Base", "write_surface": ["a.py"]},
            {"id": "B", "title": "Left", "depends_on": ["A"], "write_surface": ["b.py"]},
            {"id": "C", "title": "Right", "depends_on": ["A"], "write_surface": ["b.py"]},
            {"id": "D", "title": "Aside", "write_surface": ["d.py"]},
        ],
    )
    parallel = json.loads(
        baro("plan", "--plan-file", str(plan), "--mode", "parallel", "--json", cwd=tmp_path).stdout
    )
    assert parallel["mode"] == "parallel"
    assert {st["id"]: st["depends_on"] for st in parallel["stories"]} == {
        "A": [],
        "B": ["A"],
        "C": ["A", "B"],
        "D": [],
    }
    assert "C now runs after B (write surfaces overlap: b.py ~ b.py)" in parallel["enforcement"]

    focused = json.loads(
        baro("plan", "--plan-file", str(plan), "--mode", "focused", "--json", cwd=tmp_path).stdout
    )
    assert len(focused["stories"]) == 1
    only = focused["stories"][0]
    assert all(title in only["description"] for title in ("Base", "Left", "Right", "Aside"))
    assert sorted(only["write_surface"]) == ["a.py", "b.py", "d.py"]
    assert any("collapsed into A" in note for note in focused["enforcement"])


def test_caps_from_the_command_line_are_hard(tmp_path: Path) -> None:
    stories = [
        {"id": f"S{i}", "title": f"Unit {i}", "write_surface": [f"u{i}.py"]} for i in range(1, 5)
    ]
    plan = write_plan(tmp_path / "plan.json", stories)
    capped = json.loads(
        baro(
            "plan",
            "--plan-file",
            str(plan),
            "--mode",
            "parallel",
            "--max-stories",
            "2",
            "--parallelism",
            "2",
            "--json",
            cwd=tmp_path,
        ).stdout
    )
    assert len(capped["stories"]) == 2 and capped["caps"] == {"max_stories": 2, "parallelism": 2}
    titles = " ".join(st["description"] + st["title"] for st in capped["stories"])
    assert all(f"Unit {i}" in titles for i in range(1, 5)), "merged, not dropped"
    one_at_a_time = json.loads(
        baro(
            "plan",
            "--plan-file",
            str(plan),
            "--mode",
            "parallel",
            "--parallelism",
            "1",
            "--json",
            cwd=tmp_path,
        ).stdout
    )
    assert one_at_a_time["mode"] == "sequential"
    assert one_at_a_time["caps"]["parallelism"] == 1


def test_without_mode_a_plan_file_runs_by_its_shape(tmp_path: Path) -> None:
    one = write_plan(tmp_path / "one.json", [{"id": "S1", "title": "Only"}])
    two = write_plan(
        tmp_path / "two.json",
        [
            {"id": "S1", "title": "One", "write_surface": ["a.py"]},
            {"id": "S2", "title": "Two", "write_surface": ["b.py"]},
        ],
    )
    assert (
        json.loads(baro("plan", "--plan-file", str(one), "--json", cwd=tmp_path).stdout)["mode"]
        == "focused"
    )
    both = json.loads(baro("plan", "--plan-file", str(two), "--json", cwd=tmp_path).stdout)
    assert both["mode"] == "parallel" and both["mode_source"] == "plan"


def test_a_model_plans_only_when_asked(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    answer = {
        "stories": [
            {"id": "S1", "title": "Parse the flag", "write_surface": ["src/cli.py"]},
            {"id": "S2", "title": "Document it", "write_surface": ["docs/cli.md"]},
        ]
    }
    script.write_text(
        json.dumps(
            {
                "stories": [
                    {"match": {"id": "baro-planner"}, "steps": [{"text": json.dumps(answer)}]}
                ]
            }
        )
    )
    out = baro(
        "plan",
        "make the command line friendlier",
        "--mode",
        "parallel",
        "--planner",
        "llm",
        "--backend",
        "scripted",
        "--script",
        str(script),
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["planner"] == "llm" and [st["id"] for st in plan["stories"]] == ["S1", "S2"]
    assert plan["enforcement"] == ["planned by scripted (2 stories)"]
    assert plan["tokens"]["input"] == 1000, "the planner's tokens are reported"


def test_a_model_that_cannot_plan_fails_with_one_line(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": {"steps": [{"text": "no plan here"}]}}))
    out = baro(
        "plan",
        "make the command line friendlier",
        "--mode",
        "parallel",
        "--planner",
        "llm",
        "--backend",
        "scripted",
        "--script",
        str(script),
        cwd=tmp_path,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "baro: planning failed: scripted did not return a usable plan, even after one repair: "
        "the answer contains no JSON object (retry, or give the stories yourself with --plan-file)"
    ]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "the plan is not valid JSON: Expecting property name"),
        ('["S1"]', 'the plan must be a JSON object {"stories": [...]}, not a list'),
        ('{"stories": []}', "the plan has no stories"),
        ('{"stories": [{"id": "S1"}]}', "stories[0] has no 'title'"),
        ('{"stories": [{"id": "S1", "title": "a", "needs": ["S0"]}]}', "unknown field 'needs'"),
        (
            '{"stories": [{"id": "S1", "title": "a"}, {"id": "S1", "title": "b"}]}',
            "duplicate story id 'S1'",
        ),
        ('{"stories": [{"id": "S1", "title": "a", "depends_on": ["S9"]}]}', "unknown story 'S9'"),
        (
            '{"stories": [{"id": "A", "title": "a", "depends_on": ["B"]}, '
            '{"id": "B", "title": "b", "depends_on": ["A"]}]}',
            "dependency cycle: A -> B -> A",
        ),
        ('{"stories": [{"id": "S1", "title": "a", "write_surface": ["/etc/passwd"]}]}', "unsafe"),
        ('{"stories": [{"id": "S1", "title": "a", "write_surface": [".git/config"]}]}', ".git"),
    ],
)
def test_bad_plan_files_get_one_line_naming_the_problem(
    tmp_path: Path, content: str, needle: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    out = baro("plan", "--plan-file", str(plan), "--mode", "parallel", "--json", cwd=tmp_path)
    one_line_error(out, needle)
    assert out.stderr.startswith(f"baro: {plan}: ")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["plan"], "nothing to plan: give a GOAL"),
        (["plan", "   "], "the goal is empty"),
        (["plan", "fix it", "--mode", "turbo"], "unknown mode 'turbo'"),
        (["plan", "fix it", "--planner", "oracle"], "unknown planner 'oracle'"),
        (["plan", "--plan-file", "missing.json"], "cannot read the plan file missing.json"),
        (["plan", "fix it", "--repo", "nowhere"], "does not exist"),
        (["plan", "fix it", "--planner", "llm"], "the claude CLI is not installed"),
    ],
)
def test_bad_input_gets_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    one_line_error(baro(*args, cwd=tmp_path), needle)


# --------------------------------------------------------------------------- baro run's door


def test_run_refuses_a_story_backend_that_is_not_installed_before_submitting(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    plan = write_plan(
        tmp_path / "plan.json",
        [
            {"id": "A", "title": "a", "write_surface": ["src/app/a.py"]},
            {"id": "B", "title": "b", "write_surface": ["src/app/b.py"], "backend": "pi"},
        ],
    )
    env = {"BARO_BACKEND": "scripted", "BARO_PI_BIN": "/nonexistent/pi"}
    out = baro("run", "two things", "--plan-file", str(plan), "--yes", cwd=repo, env=env)
    one_line_error(out, "pi")
    assert (
        "baro/"
        not in subprocess.run(
            ["git", "-C", str(repo), "branch", "--list"], capture_output=True, text=True
        ).stdout
    )


@pytest.mark.parametrize(
    ("tiers", "needle"),
    [
        ("docs", "is not KIND=MODEL"),
        ("prose=haiku", "unknown kind 'prose'"),
        ("docs=--dangerous", "is not a model name"),
        ("docs=a,docs=b", "docs is given twice"),
    ],
)
def test_run_refuses_bad_model_tiers(tmp_path: Path, tiers: str, needle: str) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    env = {"BARO_BACKEND": "scripted"}
    out = baro("run", "add a.py", "--model-tiers", tiers, "--yes", cwd=repo, env=env)
    one_line_error(out, needle)


@pytest.mark.parametrize(
    ("story", "needle"),
    [
        ({"backend": "gpt"}, "unknown backend 'gpt'"),
        ({"model": "-x"}, "is not a model name"),
        ({"model": 3}, "stories[0].model must be a string"),
    ],
)
def test_a_plan_file_with_a_bad_agent_is_one_line(
    tmp_path: Path, story: dict[str, object], needle: str
) -> None:
    plan = write_plan(tmp_path / "plan.json", [{"id": "A", "title": "a", **story}])
    out = baro("plan", "--plan-file", str(plan), "--json", cwd=tmp_path)
    one_line_error(out, needle)


def test_a_goal_from_standard_input_is_planned_like_one_given_as_an_argument(
    tmp_path: Path,
) -> None:
    """``-`` reads the goal from standard input, as ``baro run -`` does: a goal of several
    lines (numbered steps) is planned, not the one-character goal "-"."""
    repo = make_repo(tmp_path / "repo", FILES)
    goal = (
        "1. add a helper to src/app/a.py\n2. use it in src/app/b.py\n3. document it in README.md\n"
    )
    piped = baro("plan", "-", "--json", cwd=repo, stdin=goal)
    given = baro("plan", goal, "--json", cwd=repo)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) == json.loads(given.stdout)
    planned = json.loads(piped.stdout)
    assert planned["mode"] == "sequential" and len(planned["stories"]) == 3
