"""End to end, on the real stack: new endpoints split into one story each, then one story
that registers them where the application registers its others.

- the registering story runs after every unit and may change only the registry files;
- a unit story that registers its own router anyway is held to its surface;
- when there is nothing to register, the registering story ends without changes and the
  run is delivered (without it, "the agent finished without changing any file" failed it).
"""

from __future__ import annotations

from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end

GOAL = "Add a users endpoint, an orders endpoint and a products endpoint, each in its own module"
APP = "from api.routes import notes, tags\n\nROUTERS = [notes.router, tags.router]\n"
FILES = {
    "src/api/__init__.py": "",
    "src/api/app.py": APP,
    "src/api/routes/__init__.py": "",
    "src/api/routes/notes.py": "router = 'notes'\n",
    "src/api/routes/tags.py": "router = 'tags'\n",
}
NAMES = ("users", "orders", "products")
REGISTERED = (
    "from api.routes import notes, orders, products, tags, users\n\n"
    "ROUTERS = [notes.router, tags.router, users.router, orders.router, products.router]\n"
)


def _unit(story_id: str, name: str) -> dict[str, object]:
    path = f"src/api/routes/{name}.py"
    return {
        "match": {"id": story_id},
        "steps": [{"write": path, "content": f"router = '{name}'\n"}, {"usage": {"input": 5}}],
    }


def _plan(events: list[s.Event]) -> list[s.Story]:
    return next(ev for ev in events if isinstance(ev, s.PlanAccepted)).stories


async def test_new_endpoints_are_registered_by_a_last_story(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {
        "stories": [
            *(_unit(f"S{i}", name) for i, name in enumerate(NAMES, 1)),
            {
                "match": {"id": "S4"},
                "steps": [{"write": "src/api/app.py", "content": REGISTERED}],
            },
        ]
    }
    request = request_for(repo, GOAL, script, mode_request="parallel")
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason

    plan = _plan(await replay(bus, request.run_id))
    assert [st.write_surface for st in plan] == [
        ["src/api/routes/users.py"],
        ["src/api/routes/orders.py"],
        ["src/api/routes/products.py"],
        ["src/api/routes/__init__.py", "src/api/app.py"],
    ]
    register = plan[-1]
    assert register.depends_on == ["S1", "S2", "S3"] and register.may_change_nothing
    assert "src/api/routes/users.py" in register.description
    assert "story S4 registers the new endpoints" in plan[0].description

    branch = report.branch
    assert branch is not None
    assert run_git(repo, "show", f"{branch}:src/api/app.py") == REGISTERED.rstrip("\n")
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{branch}").splitlines()
    assert sorted(changed) == sorted(["src/api/app.py", *(f"src/api/routes/{n}.py" for n in NAMES)])


async def test_a_unit_story_registering_its_own_router_is_held_to_its_surface(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    eager = {  # its first attempt; told why it was rejected, the next one keeps to its module
        "match": {"id": "S1"},
        "attempts": [1],
        "steps": [
            {"write": "src/api/routes/users.py", "content": "router = 'users'\n"},
            {"write": "src/api/app.py", "content": APP + "# users registered by S1\n"},
        ],
    }
    script = {
        "stories": [
            eager,
            _unit("S1", "users"),
            _unit("S2", "orders"),
            _unit("S3", "products"),
            {"match": {"id": "S4"}, "steps": [{"write": "src/api/app.py", "content": REGISTERED}]},
        ]
    }
    request = request_for(repo, GOAL, script, mode_request="parallel")
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason
    events = await replay(bus, request.run_id)
    rejected = [ev for ev in events if isinstance(ev, s.StoryRejected)]
    assert [(ev.story_id, ev.attempt, ev.surface_violations) for ev in rejected] == [
        ("S1", 1, ["src/api/app.py"])
    ]
    branch = report.branch
    assert branch is not None
    # S1's edit of the registry is not on the branch; S4's registration is
    assert "registered by S1" not in run_git(repo, "show", f"{branch}:src/api/app.py")
    assert run_git(repo, "show", f"{branch}:src/api/app.py") == REGISTERED.rstrip("\n")


async def test_nothing_to_register_is_a_finished_story(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {
        "stories": [
            *(_unit(f"S{i}", name) for i, name in enumerate(NAMES, 1)),
            # the application discovers its routers: the agent changes nothing
            {"match": {"id": "S4"}, "steps": [{"text": "They are discovered; nothing to do."}]},
        ]
    }
    request = request_for(repo, GOAL, script, mode_request="parallel")
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason
    by_id = {st["id"]: st for st in report.stories}
    assert [by_id[f"S{i}"]["status"] for i in range(1, 5)] == ["integrated"] * 4
    assert str(by_id["S4"]["note"]).startswith("nothing to change")
    assert by_id["S1"]["note"] is None
    branch = report.branch
    assert branch is not None
    assert run_git(repo, "show", f"{branch}:src/api/app.py") == APP.rstrip("\n")
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{branch}").splitlines()
    assert sorted(changed) == sorted(f"src/api/routes/{n}.py" for n in NAMES)
    events = await replay(bus, request.run_id)
    s4 = [ev for ev in events if isinstance(ev, s.StoryUpdated) and ev.story_id == "S4"]
    assert s4[-1].status == "integrated"


async def test_a_registering_story_whose_changes_are_all_left_out_is_not_nothing_to_change(
    bus: Bus, tmp_path: Path
) -> None:
    """A hostile agent in the story that may change nothing: its only changes are a symbolic
    link out of the repository and a plan artifact. That is not "nothing to change": the
    story delivered nothing and the run says so instead of calling it delivered."""
    repo = make_repo(tmp_path / "user", FILES)
    script = {
        "stories": [
            *(_unit(f"S{i}", name) for i, name in enumerate(NAMES, 1)),
            {
                "match": {"id": "S4"},
                "steps": [
                    {"write": "prd.json", "content": '{"passes": true}\n'},
                    {"run": "ln -s /etc/passwd src/api/passwd"},
                ],
            },
        ]
    }
    request = request_for(repo, GOAL, script, mode_request="parallel")
    report = await run_to_end(bus, request, timeout=180)
    assert report.status != "delivered"
    assert "S4 delivered nothing" in (report.reason or "")
    by_id = {st["id"]: st for st in report.stories}
    assert not str(by_id["S4"].get("note") or "").startswith("nothing to change")
    branch = report.branch
    assert branch is not None  # the three endpoints, as a checkpoint
    assert run_git(repo, "show", f"{branch}:src/api/app.py") == APP.rstrip("\n")
    assert "passwd" not in run_git(repo, "ls-tree", "-r", "--name-only", branch)
