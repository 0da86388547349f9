"""Bad input is refused at the door, one row per case: exit 2, one line, no traceback, no
internal temporary path, nothing queued, nothing delivered, and the user's checkout
byte-identical. (The HTTP API's rows are in tests/api/test_door.py.)"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.inputs import GOAL_MAX_BYTES, MAX_PLAN_STORIES
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git, snapshot

BARO = str(Path(sys.executable).parent / "baro")
EMOJI_GOAL = "😀" * 20_000  # 20,000 characters, 80,000 bytes


def plan_file(path: Path, stories: list[dict]) -> str:
    path.write_text(json.dumps({"stories": stories}))
    return str(path)


@dataclass
class Row:
    name: str
    args: Callable[[Path], list[str]]  # given the test's scratch folder
    needles: list[str]
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None  # changes to the user's repository
    starts_server: bool = False  # the refusal comes from a service that could not start


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def bare_clone(scratch: Path) -> str:
    source = make_repo(scratch / "source", {"a.txt": "a\n"})
    run_git(scratch, "clone", "--quiet", "--bare", str(source), str(scratch / "bare.git"))
    return str(scratch / "bare.git")


ROWS = [
    Row("nul byte in the goal (stdin)", lambda _: ["run", "-"], ["U+0000 (NUL)"], b"fix\0it"),
    Row(
        "nul byte in the goal (file)",
        lambda d: ["run", "--goal-file", _write(d / "goal.txt", b"fix \0 it")],
        ["U+0000 (NUL)"],
    ),
    Row(
        "escape sequence in the goal",
        lambda _: ["run", "fix \x1b]0;owned\x07 the title"],
        ["U+001B (escape)"],
    ),
    Row("80 KB of emoji as the goal", lambda _: ["run", EMOJI_GOAL], ["80000 bytes", "limit"]),
    Row(
        "120 KB goal from a file",
        lambda d: ["run", "--goal-file", _write(d / "goal.txt", b"fix it " * 17_500)],
        [f"longer than {GOAL_MAX_BYTES} bytes"],
    ),
    Row(
        "120 KB goal from stdin",
        lambda _: ["run", "-"],
        [f"longer than {GOAL_MAX_BYTES} bytes"],
        b"fix it " * 17_500,
    ),
    Row(
        "a goal that is not UTF-8",
        lambda d: ["run", "--goal-file", _write(d / "goal.txt", b"fix \xff it")],
        ["not UTF-8"],
    ),
    Row("no goal at all", lambda _: ["run"], ["no goal"]),
    Row(
        "a goal twice",
        lambda d: ["run", "x", "--goal-file", _write(d / "g.txt", b"y")],
        ["not both"],
    ),
    Row("a model read as a flag", lambda _: ["run", "fix it", "--model", "--foo"], ["'--foo'"]),
    Row(
        "a model with a control character",
        lambda _: ["run", "fix it", "--model", "gpt\x1b5"],
        ["is not a model name"],
    ),
    Row(
        "nul byte in a write surface",
        lambda d: [
            "run",
            "do it",
            "--plan-file",
            plan_file(d / "p.json", [{"id": "S1", "title": "t", "write_surface": ["a\u0000.py"]}]),
        ],
        ["unsafe write surface", "control character"],
    ),
    Row(
        ".GIT in a write surface",
        lambda d: [
            "run",
            "do it",
            "--plan-file",
            plan_file(
                d / "p.json", [{"id": "S1", "title": "t", "write_surface": [".GIT/hooks/x"]}]
            ),
        ],
        ["inside .git"],
    ),
    Row(
        "a control character in a story title",
        lambda d: [
            "run",
            "do it",
            "--plan-file",
            plan_file(d / "p.json", [{"id": "S1", "title": "t\x07"}]),
        ],
        ["U+0007 (bell)"],
    ),
    Row(
        "more stories than a plan may hold",
        lambda d: [
            "run",
            "do it",
            "--plan-file",
            plan_file(
                d / "p.json", [{"id": f"S{i}", "title": "t"} for i in range(MAX_PLAN_STORIES + 1)]
            ),
        ],
        [f"at most {MAX_PLAN_STORIES}"],
    ),
    Row(
        "a bare repository",
        lambda d: ["run", "fix it", "--repo", bare_clone(d)],
        ["is a bare repository", "git clone"],
    ),
    Row(
        "a ref named refs/baro",
        lambda _: ["run", "fix it"],
        ["ref named refs/baro", "git update-ref -d refs/baro"],
        prepare=lambda repo: run_git(repo, "update-ref", "refs/baro", "HEAD"),
    ),
    Row(
        "a branch named baro",
        lambda _: ["run", "fix it"],
        ["branch named 'baro'"],
        prepare=lambda repo: run_git(repo, "branch", "baro"),
    ),
]


def baro(args: list[str], cwd: Path, scratch: Path, row: Row) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "BARO_CACHE_DIR": str(scratch / "cache"),
        "BARO_STATE_DIR": str(scratch / "state"),
        "BARO_BACKEND": "scripted",
        **row.env,
    }
    return subprocess.run(
        [BARO, *args], cwd=cwd, input=row.stdin, capture_output=True, timeout=120, env=env
    )


def assert_refused_at_the_door(
    out: subprocess.CompletedProcess, needles: list[str], scratch: Path
) -> None:
    stderr = out.stderr.decode()
    assert out.returncode == 2, stderr
    assert out.stdout == b""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("baro: ")
    assert "Traceback" not in stderr
    assert tempfile.gettempdir() + "/baro-" not in stderr, "an internal temporary path"
    assert str(scratch / "cache") not in stderr and str(scratch / "state") not in stderr
    assert "\x1b" not in stderr and "\x07" not in stderr and "\x00" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input_is_refused_at_the_door(row: Row, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"}, dirty=True)
    if row.prepare is not None:
        row.prepare(repo)
    refs_before = run_git(repo, "for-each-ref")
    before = snapshot(repo)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = baro(row.args(scratch), repo, scratch, row)
    assert_refused_at_the_door(out, row.needles, scratch)
    assert snapshot(repo) == before
    assert run_git(repo, "for-each-ref") == refs_before, "nothing delivered, no ref written"
    assert not (scratch / "state" / "nats").exists(), "nothing was queued: no bus was started"


def test_a_taken_api_port_is_one_line(tmp_path: Path, taken_port: int) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"}, dirty=True)
    before = snapshot(repo)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    row = Row("port", lambda _: [], [], env={"BARO_API_PORT": str(taken_port)})
    out = baro(["run", "fix it"], repo, scratch, row)
    assert_refused_at_the_door(
        out, [f"cannot serve the HTTP API on 127.0.0.1:{taken_port}", "BARO_API_PORT"], scratch
    )
    assert snapshot(repo) == before
    assert run_git(repo, "for-each-ref", "refs/baro") == ""


@pytest.mark.parametrize("value", ["nan", "inf", "90000"])
def test_a_timeout_that_is_not_a_number_of_seconds_says_so(value: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = baro(["run", "fix it", "--story-timeout", value], repo, scratch, Row("t", list, []))
    stderr = out.stderr.decode()
    assert out.returncode == 2
    assert "Traceback" not in stderr
    assert ("not a number of seconds" if value != "90000" else "give 1 to 86400 seconds") in stderr


def test_a_goal_from_stdin_runs(tmp_path: Path) -> None:
    """`baro run -` reads the goal from stdin (not "-" as the goal) and runs it."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"}, dirty=True)
    before = snapshot(repo)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    goal = b"Append a line to a.txt\r\n\r\nKeep it short.\r\n"
    row = Row("stdin", lambda _: [], [], stdin=goal)
    out = baro(["run", "-", "--yes", "--json", "--quiet"], repo, scratch, row)
    assert out.returncode == 0, out.stderr.decode()
    report = json.loads(out.stdout)
    assert report["status"] == "delivered"
    assert report["branch"] == "baro/append-a-line-to-a-txt-keep-it-short"  # the whole goal
    assert snapshot(repo) == before


def test_goals_read_from_a_file_or_stdin_are_plain_text(tmp_path: Path) -> None:
    from baro_cli.validate import UserError, read_goal

    crlf = b"\xef\xbb\xbfAdd tests\r\n\r\nfor a.py\r\n"
    path = tmp_path / "goal.txt"
    path.write_bytes(crlf)
    assert read_goal(None, path) == "Add tests\n\nfor a.py"
    assert read_goal("-", None, stdin=io.BytesIO(crlf)) == "Add tests\n\nfor a.py"
    assert read_goal("fix it", None) == "fix it"
    with pytest.raises(UserError, match="cannot read the goal file"):
        read_goal(None, tmp_path / "missing.txt")


async def test_goals_and_reasons_are_shown_with_control_characters_escaped(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    """A run recorded with an ESC/BEL/OSC goal (a producer that skipped the door, or a
    record older than it): `baro runs`, `status` and `watch` show the characters escaped."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    request = s.RunSubmitted(
        run_id="20250101-000000-e5c0de",
        goal="\x1b]0;owned\x07fix \x1b[31mred\x1b[0m it",
        repo=s.RepoSource(
            kind="path", location=str(repo), commit=run_git(repo, "rev-parse", "HEAD")
        ),
        backend="scripted",
    )
    await bus.publish(request, f"{request.run_id}.submitted")
    for _ in range(200):
        got = await bus.get_record(request.run_id)
        if got and got[0].state == "failed":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the run was not recorded")
    outputs = {}
    for command in (["runs"], ["status", request.run_id], ["watch", request.run_id]):
        out = await asyncio.to_thread(
            subprocess.run,
            [BARO, *command, "--nats-url", stack.nats_url],
            capture_output=True,
            timeout=60,
        )
        outputs[command[0]] = out.stdout.decode() + out.stderr.decode()
    for name, text in outputs.items():
        assert "\x1b" not in text and "\x07" not in text, name
    assert "\\x1b]0;owned\\x07fix" in outputs["runs"]
    assert "goal: \\x1b]0;owned\\x07fix \\x1b[31mred\\x1b[0m it" in outputs["status"]
    assert "the submission was refused: the goal contains U+001B" in outputs["watch"]


def test_a_prompt_past_the_argument_limit_reaches_the_agent(tmp_path: Path) -> None:
    """A focused run of a plan of 300 long stories is one story whose prompt (over 300 KB)
    no command line could carry (128 KiB per argument): the agent reads all of it."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    stories = [
        {"id": f"S{i}", "title": f"part {i}", "description": f"detail {i} " + "x" * 1000}
        for i in range(300)
    ]
    kept = scratch / "prompt.txt"
    script = {
        "default": {"steps": [{"save_prompt": str(kept)}, {"append": "a.txt", "content": "b\n"}]}
    }
    args = [
        "run",
        "do every part",
        "--plan-file",
        plan_file(scratch / "plan.json", stories),
        "--mode",
        "focused",
        "--script",
        _write(scratch / "script.json", json.dumps(script).encode()),
        "--yes",
        "--json",
        "--quiet",
    ]
    out = baro(args, repo, scratch, Row("long", list, []))
    assert out.returncode == 0, out.stderr.decode()
    assert json.loads(out.stdout)["status"] == "delivered"
    prompt = kept.read_text()
    assert len(prompt.encode()) > 300_000
    assert "## S299: part 299\ndetail 299 " in prompt
