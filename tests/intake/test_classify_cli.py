"""`baro classify`: the decision without running anything, as a user calls it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pexpect

from baro_intake.classifier import classify

BARO = str(Path(sys.executable).parent / "baro")
GOALS = [
    "fix the typo in the README title",
    "Add a test file for each of parser.py, lexer.py and printer.py; each test is independent",
    "first add the users table, then the API endpoint, then the settings page",
    "fix",
]


def baro(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BARO, *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=env or {**os.environ, "BARO_LOG_LEVEL": "WARNING"},
    )


def test_one_goal_in_words() -> None:
    done = baro("classify", GOALS[1])
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first.startswith("parallel (") and "confident) — " in first
    assert "  caps: up to 3 stories, 3 at once" in rest
    assert any(line.startswith("  decided by offline in ") for line in rest)


def test_one_goal_as_json_matches_the_classifier() -> None:
    done = baro("classify", GOALS[2], "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    got = json.loads(lines[0])
    expected = classify(GOALS[2])
    assert got["goal"] == GOALS[2]
    assert (got["mode"], got["confidence"], got["reason"]) == (
        expected.mode,
        expected.confidence,
        expected.reason,
    )
    assert got["vague"] is False and got["source"] == "offline"
    assert got["caps"] == {"max_stories": expected.caps.max_stories, "parallelism": 1}
    assert got["tokens"] == {"input": None, "cached_input": None, "output": None, "reasoning": None}
    assert [e["samples"] for e in got["estimates"]] == [0, 0, 0]


def test_goals_from_stdin_one_json_object_per_line() -> None:
    done = baro("classify", "-", "--json", stdin="\n".join([GOALS[0], "", *GOALS[1:]]) + "\n")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["goal"] for row in rows] == GOALS, "blank lines are skipped, order is kept"
    assert [row["mode"] for row in rows] == ["focused", "parallel", "sequential", "focused"]
    assert rows[-1]["vague"] is True and rows[-1]["interpretation"]


def test_goals_from_stdin_in_words() -> None:
    done = baro("classify", "-", stdin="\n".join(GOALS[:2]) + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("goal: ") == 2
    assert f"goal: {GOALS[0]}\nfocused (" in done.stdout


def test_llm_intake_through_the_scripted_agent(tmp_path: Path) -> None:
    reply = {"mode": "sequential", "confidence": 0.7, "reason": "a chain over one module"}
    script = tmp_path / "script.json"
    steps = [{"text": json.dumps(reply)}, {"usage": {"input": 250, "output": 15}}]
    script.write_text(json.dumps({"stories": [{"match": {"id": "baro-intake"}, "steps": steps}]}))
    done = baro(
        "classify",
        GOALS[0],
        "--json",
        "--intake",
        "llm",
        "--backend",
        "scripted",
        "--script",
        str(script),
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["mode"], got["source"], got["reason"]) == ("sequential", "llm", reply["reason"])
    assert got["tokens"]["input"] == 250 and got["tokens"]["output"] == 15


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "BARO_CLAUDE_BIN": str(tmp_path / "no-claude")}
    bad_script = tmp_path / "bad.json"
    bad_script.write_text("{not json")
    cases = [
        (("classify", "  "), "the goal is empty"),
        (("classify", "x y", "--intake", "magic"), "unknown intake 'magic'"),
        (
            ("classify", "x y", "--intake", "llm", "--backend", "claude"),
            "claude CLI is not installed",
        ),
        (("classify", "x y", "--backend", "gpt"), "unknown backend 'gpt'"),
        (("classify", "x y", "--script", str(bad_script)), "cannot use the agent script"),
    ]
    for args, message in cases:
        done = baro(*args, env=env)
        assert done.returncode == 2, args
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("baro: ") and message in lines[0], lines


def test_dash_on_a_terminal_says_to_pipe_goals_in() -> None:
    child = pexpect.spawn(BARO, ["classify", "-"], encoding="utf-8", timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert "baro: GOAL is -, but nothing is piped in" in child.before
