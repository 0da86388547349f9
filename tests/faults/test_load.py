"""Load: 20 concurrent runs of 4 stories each across 4 runner processes, on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo
from tests.faults.conftest import Cluster, events_of, story_commits, submit_request, wait_final

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

RUNS = 20
RUNNERS = 4
FILES = {"a.py": "A = 0\n", "b.py": "B = 0\n", "c.py": "C = 0\n", "d.py": "D = 0\n"}
GOAL = "add tests for a.py, b.py, c.py and d.py"
# each story sleeps (an I/O-bound agent), then writes a file of its own
SCRIPT = {
    "stories": [
        {
            "match": {"id": f"S{i}"},
            "steps": [
                {"sleep": 1.0},
                {"write": f"story{i}.txt", "content": f"{i}\n"},
                {"usage": {"input": 1000, "cached": 600, "output": 100}},
            ],
        }
        for i in range(1, 5)
    ]
}


async def test_twenty_runs_of_four_stories_all_deliver_exactly_once(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.env["BARO_MAX_RUNNING_AGENTS"] = "16"
    cluster.start_core()
    runners = [cluster.start("agent-runner", runner_slots="4") for _ in range(RUNNERS)]
    repos = [make_repo(tmp_path / f"user{i}", FILES) for i in range(RUNS)]
    await asyncio.sleep(2)
    started = time.monotonic()
    requests = [
        submit_request(
            repo,
            GOAL,
            SCRIPT,
            mode_request="parallel",
            limits=s.Limits(parallelism=4, retries=0),
            surface="warn",  # the stories write beside their surfaces: load, not surfaces
        )
        for repo in repos
    ]
    for req in requests:
        await client.publish(req, f"{req.run_id}.submitted")
    finals = await asyncio.gather(
        *(wait_final(client, cluster, r.run_id, timeout=500) for r in requests)
    )
    elapsed = time.monotonic() - started

    stories = 0
    for repo, req, final in zip(repos, requests, finals, strict=True):
        assert final.state == "delivered", (req.run_id, final.reason)
        ids = sorted(st.story.id for st in final.stories)
        assert len(ids) == 4
        assert sorted(story_commits(repo, final.delivered.branch, final.delivered.base)) == ids
        integrated = [
            e.story_id
            for e in await events_of(client, req.run_id)
            if isinstance(e, s.StoryIntegrated)
        ]
        assert sorted(integrated) == ids, "a story was lost or integrated twice"
        stories += len(ids)
    peaks = [r.peak_rss_mb() for r in runners]
    assert max(peaks) < 400, f"runner peak memory {max(peaks):.0f} MB"
    print(
        json.dumps(
            {  # the figures for the record (run with -s to see them)
                "runs": RUNS,
                "stories": stories,
                "runners": RUNNERS,
                "seconds": round(elapsed, 2),
                "stories_per_minute": round(stories / elapsed * 60, 1),
                "runner_peak_rss_mb": [round(p, 1) for p in peaks],
            }
        )
    )
