"""End to end, on the real stack: the prompts stories actually received and the command
lines their agents were started with (the scripted agent records both into a file of its
story, which then reaches the delivered branch).

- every story of a parallel run gets the design note;
- a dependent story is told what its dependency delivered (files, commit);
- a retry is told what a sibling integrated next to its files meanwhile;
- each story's agent runs with its own model, its kind's tier, or the run's.
"""

from __future__ import annotations

import json
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end

FILES = {
    "src/app/__init__.py": "",
    "src/app/core.py": "X = 1\n",
    "docs/index.md": "# docs\n",
}
ARCHITECT_NOTE = (
    "Shared names: `app.core.X` is read only; each story adds one module under src/app/ and "
    "exports one function named after its file."
)
PLAN = [
    s.Story(id="S1", title="Add the guide", write_surface=["docs/guide.md"]),
    s.Story(
        id="S2", title="Add src/app/fast.py", write_surface=["src/app/fast.py"], model="big-model"
    ),
    s.Story(id="S3", title="Add src/app/slow.py", write_surface=["src/app/slow.py"]),
    s.Story(
        id="S4",
        title="Link the guide",
        write_surface=["docs/links.md"],
        depends_on=["S1"],
    ),
]


def _record(path: str) -> list[object]:
    return [{"record": path}, {"usage": {"input": 10, "output": 1}}]


def _read(repo: Path, branch: str, path: str) -> dict[str, object]:
    return json.loads(run_git(repo, "show", f"{branch}:{path}"))


async def test_stories_get_the_design_note_deliveries_nearby_changes_and_their_models(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    s2_done = tmp_path / "s2-done"
    script = {
        "stories": [
            {
                "match": {"id": "baro-architect"},
                "steps": [{"text": ARCHITECT_NOTE}, {"usage": {"input": 70, "output": 30}}],
            },
            {"match": {"id": "S1"}, "steps": _record("docs/guide.md")},
            {
                "match": {"id": "S2"},
                "steps": [*_record("src/app/fast.py"), {"run": f"touch {s2_done}"}],
            },
            # S3's first attempt outlasts S2 (and its integration, a moment later), then
            # fails; its retry records what it was told
            {
                "match": {"id": "S3"},
                "attempts": [1],
                "steps": [
                    {"run": f"while [ ! -e {s2_done} ]; do sleep 0.1; done"},
                    {"sleep": 3},
                    {"fail": "tests failed"},
                ],
            },
            {"match": {"id": "S3"}, "steps": _record("src/app/slow.py")},
            {"match": {"id": "S4"}, "steps": _record("docs/links.md")},
        ]
    }
    request = request_for(
        repo,
        "add a guide, two modules and a link page",
        script,
        mode_request="parallel",
        planner="llm",  # the scripted agent is asked (as baro-architect) only when named
        plan=PLAN,
        model="run-model",
        model_tiers=[s.ModelTier(kind="docs", model="cheap-docs")],
        limits=s.Limits(parallelism=4, retries=1, story_timeout_s=120, stall_timeout_s=60),
    )
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason
    branch = report.branch
    assert branch is not None

    guide = _read(repo, branch, "docs/guide.md")
    fast = _read(repo, branch, "src/app/fast.py")
    slow = _read(repo, branch, "src/app/slow.py")
    links = _read(repo, branch, "docs/links.md")

    # the design note, in every story's prompt
    for recorded in (guide, fast, slow, links):
        prompt = str(recorded["prompt"])
        assert "Shared design (every story running beside yours" in prompt
        assert ARCHITECT_NOTE in prompt

    # what S4's dependency delivered
    events = await replay(bus, request.run_id)
    s1 = next(ev for ev in events if isinstance(ev, s.StoryIntegrated) and ev.story_id == "S1")
    assert s1.files == ["docs/guide.md"]
    assert f'- S1 "Add the guide" (commit {s1.integration_commit[:12]}): docs/guide.md' in str(
        links["prompt"]
    )
    assert "What the stories yours depends on delivered" not in str(fast["prompt"])

    # S3's retry, told about S2's module next to its own
    s2 = next(ev for ev in events if isinstance(ev, s.StoryIntegrated) and ev.story_id == "S2")
    assert "other stories merged changes near your files" in str(slow["prompt"])
    assert (
        f'- S2 "Add src/app/fast.py" (commit {s2.integration_commit[:12]}): src/app/fast.py'
        in str(slow["prompt"])
    )
    assert "merged changes near your files" not in str(links["prompt"])

    # each agent's command line: its own model, its tier's, or the run's
    def model_of(recorded: dict[str, object]) -> str:
        argv = list(recorded["argv"])  # type: ignore[call-overload]
        return str(argv[argv.index("--model") + 1])

    assert model_of(fast) == "big-model"
    assert model_of(guide) == model_of(links) == "cheap-docs"
    assert model_of(slow) == "run-model"
    started = {ev.story_id: ev.model for ev in events if isinstance(ev, s.StoryStarted)}
    assert started == {"S1": "cheap-docs", "S2": "big-model", "S3": "run-model", "S4": "cheap-docs"}
    models = {st["id"]: st.get("model") for st in report.stories}
    assert models == started

    # the architect's tokens count in the run's totals, beside every attempt's
    attempts = sum(ev.tokens.input or 0 for ev in events if isinstance(ev, s.StoryFinished))
    assert report.tokens["input"] == 70 + attempts
