"""`baro run --run-token-budget`: the run's budget stops an agent mid-story while its usage
streams in, no further story starts, and the summary says what was spent and why the run
stopped — through the real CLI, its embedded NATS and the scripted agent as a process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_repo, run_git
from tests.scheduler.test_run_plan_file import baro

FILES = {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"}


def slow_calls(count: int, tokens: int, pause: float) -> list[dict[str, object]]:
    steps: list[dict[str, object]] = []
    for _ in range(count):
        steps += [{"model_call": {"input": tokens}}, {"sleep": pause}]
    return steps


def test_the_run_budget_stops_a_story_mid_way_and_the_run_says_so(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "stories": [
                    {"id": "S1", "title": "Change a.txt", "write_surface": ["a.txt"]},
                    {"id": "S2", "title": "Change b.txt", "write_surface": ["b.txt"]},
                    {"id": "S3", "title": "Change c.txt", "write_surface": ["c.txt"]},
                ]
            }
        )
    )
    finished = tmp_path / "s2-finished"
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "stories": [
                    {
                        "match": {"id": "S1"},
                        "steps": [
                            {"model_call": {"input": 1500}},
                            {"append": "a.txt", "content": "from S1\n"},
                        ],
                    },
                    {
                        # 10 calls of 1,000 tokens, one a second: the budget ends it early
                        "match": {"id": "S2"},
                        "steps": [
                            {"append": "b.txt", "content": "from S2\n"},
                            *slow_calls(10, 1000, 1.0),
                            {"run": f"touch {finished}"},
                        ],
                    },
                    {"match": {"id": "S3"}, "steps": [{"append": "c.txt", "content": "S3\n"}]},
                ]
            }
        )
    )
    done = baro(
        "run", "change a.txt, b.txt and c.txt", "--mode", "sequential", "--yes",
        "--backend", "scripted", "--plan-file", str(plan), "--script", str(script),
        "--run-token-budget", "5000", "--json",
        cwd=repo,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # needs attention: a partial result
    report = json.loads(done.stdout)

    # S1 spent 1,500; S2 had the remaining 3,500 and was stopped at its fourth call: 4,000
    # plus 2 of the model call that wrote b.txt (the scripted agent's message snapshot)
    assert report["reason"].startswith(
        "the run's token budget of 5,000 tokens was reached (5,502 spent)"
    ), report["reason"]
    assert "S2 failed: token budget exceeded: the run's token budget of 5,000" in report["reason"]
    statuses = {st["id"]: st["status"] for st in report["stories"]}
    assert statuses["S1"] == "integrated" and statuses["S2"] == "failed"
    assert statuses["S3"] in ("cancelled", "blocked"), "no story starts once it is spent"
    assert "S3 started" not in done.stderr
    assert not finished.exists(), "the agent was stopped mid-story"
    s2 = next(st for st in report["stories"] if st["id"] == "S2")
    assert s2["tokens"]["input"] == 4002 and s2["attempt"] == 1  # what it streamed, not retried
    assert report["tokens"]["input"] == 5502 and report["run_token_budget"] == 5000

    # the branch holds S1's change only; S2's is kept in its attempt ref
    assert report["branch"] is not None
    changed = run_git(repo, "diff", "--name-only", f"{report['base']}..{report['branch']}")
    assert changed.split() == ["a.txt"]

    text = baro("status", report["run_id"], cwd=repo)
    assert text.returncode == 0, text.stderr
    assert "5,502 of the run's token budget of 5,000" in text.stdout
    # per story: what it spent, in tokens and in dollars. S1 finished and its result priced
    # it ($0 from the scripted agent); S2 was stopped before its result: its price is unknown
    rows = {
        line.split()[0]: " ".join(line.split())
        for line in text.stdout.splitlines()
        if line.startswith("  ")
    }
    assert rows["ID"].split()[:5] == ["ID", "STATUS", "TOKENS", "COST", "TITLE"]
    spent = s2["tokens"]["input"] + (s2["tokens"]["output"] or 0)
    assert s2["tokens"]["cost_usd"] is None
    assert rows["S2"] == f"S2 failed attempt 1 {spent:,} unknown Change b.txt"
    assert rows["S1"].startswith("S1 integrated attempt 1 ") and " $0.0000 " in rows["S1"]
