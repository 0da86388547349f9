"""The bar: a parallel goal naming four files, through intake and the deterministic planner,
runs four agents at once and delivers one branch holding all four changes."""

from __future__ import annotations

from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git, snapshot
from tests.e2e.conftest import replay, request_for, run_to_end
from tests.scheduler.conftest import intervals, max_overlap, met, rendezvous

MODULES = ("alpha", "beta", "gamma", "delta")
FILES = {f"{name}.py": f"VALUE = {i!r}\n" for i, name in enumerate(MODULES)} | {
    "README.md": "# four modules\n"
}
GOAL = "add a module docstring to alpha.py, beta.py, gamma.py and delta.py"


async def test_four_named_files_run_as_four_parallel_stories(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    before = snapshot(repo)
    room = tmp_path / "room"
    script = {
        "stories": [
            {
                "match": {"title": rf"\b{name}\.py\b"},
                "steps": [
                    rendezvous(room, name, len(MODULES)),
                    {
                        "write": f"{name}.py",
                        "content": f'"""The {name} module."""\n\n{FILES[f"{name}.py"]}',
                    },
                ],
            }
            for name in MODULES
        ]
    }
    request = request_for(repo, GOAL, script)  # mode auto: the offline intake decides
    report = await run_to_end(bus, request, timeout=240)

    assert report.status == "delivered", report.reason
    assert report.mode == "parallel" and report.mode_source == "offline"
    assert len(report.stories) == 4

    events = await replay(bus, request.run_id)
    accepted = next(ev for ev in events if isinstance(ev, s.PlanAccepted))
    assert accepted.caps.parallelism >= 4
    assert sorted(st.write_surface[0] for st in accepted.stories) == sorted(
        f"{name}.py" for name in MODULES
    )
    proposed = next(ev for ev in events if isinstance(ev, s.PlanProposed))
    assert proposed.planner == "deterministic"

    spans = intervals(events)
    assert max_overlap(list(spans.values())) == 4, "all four agents ran at the same time"
    assert max(i.started for i in spans.values()) < min(i.finished for i in spans.values())
    assert all(met(room, name) == 4 for name in MODULES)

    assert report.branch is not None
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{report.branch}").split()
    assert sorted(changed) == sorted(f"{name}.py" for name in MODULES)
    for name in MODULES:
        shown = run_git(repo, "show", f"{report.branch}:{name}.py")
        assert shown.startswith(f'"""The {name} module."""')
    assert run_git(repo, "rev-list", "--count", f"{report.base}..{report.branch}") == "4"
    assert snapshot(repo) == before, "the user's branch, index, tree or stash changed"
