"""The conductor's schedule on the real stack: a diamond and a wide fan-out, run by the
scripted agent as real processes, checked from the run's replayed events and from what
each dependent's agent found in its workspace."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end
from tests.scheduler.conftest import (
    copy_out,
    integrated_at,
    intervals,
    max_overlap,
    met,
    rendezvous,
    story,
)

FILES = {"README.md": "# scheduled\n"}


def rule(sid: str, *steps: dict[str, object]) -> dict[str, object]:
    return {"match": {"id": sid}, "steps": list(steps)}


async def test_diamond_runs_in_order_with_the_middle_side_by_side(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    room, seen = tmp_path / "room", tmp_path / "seen"
    plan = [
        story("A", "Write a.txt", ["a.txt"]),
        story("B", "Write b.txt", ["b.txt"], ["A"]),
        story("C", "Write c.txt", ["c.txt"], ["A"]),
        story("D", "Write d.txt", ["d.txt"], ["B", "C"]),
    ]
    script = {
        "stories": [
            rule("A", {"write": "a.txt", "content": "from A\n"}),
            rule(
                "B",
                copy_out(["a.txt"], seen / "B"),
                rendezvous(room, "B", 2),
                {"write": "b.txt", "content": "from B\n"},
            ),
            rule(
                "C",
                copy_out(["a.txt"], seen / "C"),
                rendezvous(room, "C", 2),
                {"write": "c.txt", "content": "from C\n"},
            ),
            rule(
                "D",
                copy_out(["a.txt", "b.txt", "c.txt"], seen / "D"),
                {"write": "d.txt", "content": "from D\n"},
            ),
        ]
    }
    request = request_for(
        repo,
        "write a.txt, then b.txt and c.txt, then d.txt",
        script,
        mode_request="parallel",
        plan=plan,
        limits=s.Limits(parallelism=4, story_timeout_s=120, stall_timeout_s=90),
    )
    report = await run_to_end(bus, request, timeout=240)
    assert report.status == "delivered", report.reason
    assert report.mode == "parallel"

    events = await replay(bus, request.run_id)
    spans, done = intervals(events), integrated_at(events)
    # ordering: B and C start once A is integrated; D once both B and C are
    assert spans["A"].finished < spans["B"].started and spans["A"].finished < spans["C"].started
    assert done["A"] < min(spans["B"].started, spans["C"].started)
    assert max(done["B"], done["C"]) < spans["D"].started
    # overlap: B and C ran at the same time (they met), A and D alone
    assert spans["B"].started < spans["C"].finished and spans["C"].started < spans["B"].finished
    assert met(room, "B") == 2 and met(room, "C") == 2
    assert max_overlap(list(spans.values())) == 2

    # each dependent started from the integration head holding its dependencies
    bases = {ev.story_id: ev.base_commit for ev in events if isinstance(ev, s.StoryStarted)}
    heads = {
        ev.story_id: ev.integration_commit for ev in events if isinstance(ev, s.StoryIntegrated)
    }
    assert bases["B"] == bases["C"] == heads["A"]
    last_of_b_and_c = "B" if done["B"] > done["C"] else "C"
    assert bases["D"] == heads[last_of_b_and_c]
    assert (seen / "B").read_text() == "from A\n"
    assert (seen / "C").read_text() == "from A\n"
    assert (seen / "D").read_text() == "from A\nfrom B\nfrom C\n"

    assert report.branch is not None
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{report.branch}").split()
    assert sorted(changed) == ["a.txt", "b.txt", "c.txt", "d.txt"]


async def test_wide_fan_out_runs_up_to_the_parallelism_and_no_further(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    room, seen = tmp_path / "room", tmp_path / "seen"
    leaves = [f"L{i}" for i in range(1, 7)]
    plan = [story("R", "Write the root", ["root.txt"])] + [
        story(leaf, f"Write {leaf.lower()}.txt", [f"{leaf.lower()}.txt"], ["R"]) for leaf in leaves
    ]
    # L1 (first wave) only finishes once L4 (second wave) has started: with a barrier
    # between waves L4 would wait for L1 and they would never meet.
    handover = tmp_path / "handover"
    extra = {"L1": [rendezvous(handover, "L1", 2)], "L4": [rendezvous(handover, "L4", 2)]}
    script = {
        "stories": [rule("R", {"write": "root.txt", "content": "root\n"})]
        + [
            rule(
                leaf,
                copy_out(["root.txt"], seen / leaf),
                rendezvous(room, leaf, 3),
                *extra.get(leaf, []),
                {"write": f"{leaf.lower()}.txt", "content": f"{leaf}\n"},
            )
            for leaf in leaves
        ]
    }
    request = request_for(
        repo,
        "write the root, then six leaves",
        script,
        mode_request="parallel",
        plan=plan,
        limits=s.Limits(parallelism=3, story_timeout_s=120, stall_timeout_s=90),
    )
    report = await run_to_end(bus, request, timeout=300)
    assert report.status == "delivered", report.reason

    events = await replay(bus, request.run_id)
    spans, done = intervals(events), integrated_at(events)
    assert all(done["R"] < spans[leaf].started for leaf in leaves)
    assert max_overlap([spans[leaf] for leaf in leaves]) == 3, "the cap is reached, never passed"
    # with no checks to run, each agent's slot was handed on before its result was saved
    ended = [(ev.story_id, ev.attempt) for ev in events if isinstance(ev, s.StoryAgentEnded)]
    assert sorted(ended) == sorted((sid, 1) for sid in ["R", *leaves])
    order = [ev for ev in events if isinstance(ev, s.StoryAgentEnded | s.StoryFinished)]
    for leaf in leaves:
        kinds = [type(ev) for ev in order if ev.story_id == leaf]
        assert kinds == [s.StoryAgentEnded, s.StoryFinished]
    assert all(met(room, leaf) >= 3 for leaf in leaves), "the first three met side by side"
    assert all((seen / leaf).read_text() == "root\n" for leaf in leaves)
    # a ready story starts as soon as a slot frees, not when its whole wave is done
    assert met(handover, "L1") == 2 and met(handover, "L4") == 2
    assert spans["L4"].started < spans["L1"].finished

    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{report.branch}").split()
    assert sorted(changed) == sorted(["root.txt", *(f"{leaf.lower()}.txt" for leaf in leaves)])


async def test_all_leaves_of_a_fan_out_start_together_when_the_cap_allows(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    room = tmp_path / "room"
    leaves = [f"L{i}" for i in range(1, 7)]
    plan = [story(leaf, f"Write {leaf.lower()}.txt", [f"{leaf.lower()}.txt"]) for leaf in leaves]
    script = {
        "stories": [
            rule(
                leaf,
                rendezvous(room, leaf, len(leaves)),
                {"write": f"{leaf.lower()}.txt", "content": f"{leaf}\n"},
            )
            for leaf in leaves
        ]
    }
    request = request_for(
        repo,
        "write six independent files",
        script,
        mode_request="parallel",
        plan=plan,
        limits=s.Limits(parallelism=6, story_timeout_s=120, stall_timeout_s=90),
    )
    report = await run_to_end(bus, request, timeout=240)
    assert report.status == "delivered", report.reason
    spans = intervals(await replay(bus, request.run_id))
    assert max_overlap(list(spans.values())) == 6
    assert all(met(room, leaf) == 6 for leaf in leaves)


async def test_nothing_an_agent_started_runs_on_once_its_slot_is_handed_on(
    bus: Bus, tmp_path: Path
) -> None:
    """A hostile agent leaves a process of its own session behind, beating into a file
    outside the workspace: by the time its story's agent_ended says the slot is free, that
    process is gone, so the next story's agent never runs beside it."""
    repo = make_repo(tmp_path / "user", FILES)
    beats = tmp_path / "beats"
    survivor = (
        f"setsid sh -c 'while :; do date +%s.%N >> {shlex.quote(str(beats))}; sleep 0.02; done'"
        " >/dev/null 2>&1 < /dev/null &"
    )
    plan = [story("A", "Write a.txt", ["a.txt"]), story("B", "Write b.txt", ["b.txt"])]
    script = {
        "stories": [
            rule(
                "A", {"run": survivor}, {"run": "sleep 0.5"}, {"write": "a.txt", "content": "A\n"}
            ),
            rule("B", {"write": "b.txt", "content": "B\n"}),
        ]
    }
    request = request_for(
        repo,
        "write a.txt and b.txt",
        script,
        mode_request="parallel",
        plan=plan,
        limits=s.Limits(parallelism=2, story_timeout_s=120, stall_timeout_s=90),
    )
    report = await run_to_end(bus, request, timeout=240)
    assert report.status == "delivered", report.reason

    events = await replay(bus, request.run_id)
    (ended,) = [e for e in events if isinstance(e, s.StoryAgentEnded) and e.story_id == "A"]
    await asyncio.sleep(1)  # a survivor would have beaten again by now
    written = [float(line) for line in beats.read_text().split()]
    assert len(written) >= 5, "the survivor did run while the agent lived"
    assert max(written) < ended.ts
