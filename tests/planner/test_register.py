"""Which new units an application must register, and where (pure, no server)."""

from __future__ import annotations

import pytest

from baro_planner.deterministic import plan_goal
from baro_shared.goals.layout import Layout
from baro_shared.goals.register import registry_files
from baro_shared.goals.split import split_goal
from baro_shared.plan import PlanError, stories_from_data
from baro_shared.schemas import Caps
from baro_shared.surfaces import surfaces_overlap

PY = [
    "src/api/__init__.py",
    "src/api/app.py",
    "src/api/routes/__init__.py",
    "src/api/routes/notes.py",
    "src/api/routes/tags.py",
]
ENDPOINTS = (
    "Add a users endpoint, an orders endpoint and a products endpoint, each in its own module"
)


@pytest.mark.parametrize(
    ("goal", "creates"),
    [
        (ENDPOINTS, True),
        ("Add `doctor`, `export` and `import` subcommands, each in its own module", True),
        (
            "Implement three new routes, each in its own module: coupons, reviews and wishlists",
            True,
        ),
        ("Add CRUD endpoints for three resources, each in its own file: a.py, b.py, c.py", True),
        ("Add pagination to the tags and notes endpoints, each in its own module", False),
        ("Write tests for the users, orders and products endpoints, each in its own file", False),
        ("Document the users and orders endpoints, one page each", False),
        ("Add a /healthz endpoint to each of the billing, inventory and shipping services", False),
        ("Add a --json flag to the run and status commands, each in its own module", False),
    ],
)
def test_a_goal_creating_endpoints_or_commands_creates_units_to_register(
    goal: str, creates: bool
) -> None:
    assert split_goal(goal).registers is creates


def test_new_modules_are_registered_in_the_nearest_entry_module_and_their_package() -> None:
    new = ["src/api/routes/users.py", "src/api/routes/orders.py"]
    assert registry_files(Layout(PY), new) == ["src/api/routes/__init__.py", "src/api/app.py"]


@pytest.mark.parametrize(
    ("files", "new"),
    [
        (PY, ["src/api/routes/notes.py", "src/api/routes/tags.py"]),  # they exist
        (None, ["src/api/routes/users.py"]),  # no file list: nothing says where
        (PY, ["src/api/routes/users*"]),  # a file not yet named
        (PY, ["tests/test_users.py"]),
        # routing by file
        (["next.config.js", "pages/api/health.ts"], ["pages/api/users.ts"]),
        (["src/routes/+page.svelte", "src/app.html"], ["src/routes/users/+page.svelte"]),
        (["app/api/health/route.ts", "app/layout.tsx"], ["app/api/users/route.ts"]),
        # a new program is an entry itself
        (["main.go", "cmd/server/main.go"], ["cmd/worker/main.go"]),
        # nothing near looks like where units are registered
        (["lib/parse.py", "lib/render.py"], ["lib/handlers/users.py"]),
    ],
)
def test_nothing_to_register(files: list[str] | None, new: list[str]) -> None:
    assert registry_files(Layout(files), new) == []


def test_other_languages_register_in_their_own_entry_modules() -> None:
    go = ["go.mod", "internal/http/routes.go", "internal/http/handlers.go", "cmd/server/main.go"]
    assert registry_files(Layout(go), ["internal/http/users.go"]) == ["internal/http/routes.go"]
    ts = ["apps/api/server.ts", "apps/api/routes/users.ts", "apps/web/src/App.tsx"]
    assert registry_files(Layout(ts), ["apps/api/routes/orders.ts"]) == ["apps/api/server.ts"]


def test_a_package_without_an_entry_near_registers_in_its_init() -> None:
    cli = ["cli/commands/__init__.py", "cli/commands/run.py", "pyproject.toml"]
    assert registry_files(Layout(cli), ["cli/commands/doctor.py"]) == ["cli/commands/__init__.py"]


def _units_and_register(cap: int) -> tuple[list[list[str]], list[str], list[str]]:
    stories = plan_goal(ENDPOINTS, "parallel", Caps(max_stories=cap, parallelism=4), PY)
    assert stories is not None
    units = [st.write_surface for st in stories if not st.may_change_nothing]
    last = stories[-1]
    return units, last.write_surface, last.depends_on


def test_the_registering_story_is_the_last_and_waits_for_every_unit() -> None:
    units, registry, depends_on = _units_and_register(4)
    assert units == [
        ["src/api/routes/users.py"],
        ["src/api/routes/orders.py"],
        ["src/api/routes/products.py"],
    ]
    assert registry == ["src/api/routes/__init__.py", "src/api/app.py"]
    assert depends_on == ["S1", "S2", "S3"]
    assert not any(surfaces_overlap(u, registry) for u in units)


def test_a_cap_that_leaves_no_room_groups_units_but_keeps_the_registering_story() -> None:
    units, registry, depends_on = _units_and_register(3)
    assert units == [
        ["src/api/routes/users.py", "src/api/routes/orders.py"],
        ["src/api/routes/products.py"],
    ]
    assert registry == ["src/api/routes/__init__.py", "src/api/app.py"] and depends_on == [
        "S1",
        "S2",
    ]


def test_one_story_for_everything_registers_what_it_adds() -> None:
    stories = plan_goal(ENDPOINTS, "parallel", Caps(max_stories=1, parallelism=1), PY)
    assert stories is not None and len(stories) == 1
    (only,) = stories
    assert not only.may_change_nothing
    assert "This story does all 3 independent parts" in only.description
    assert only.write_surface == [
        "src/api/routes/users.py",
        "src/api/routes/orders.py",
        "src/api/routes/products.py",
        "src/api/routes/__init__.py",
        "src/api/app.py",
    ]


def test_a_plan_given_as_data_cannot_let_a_story_change_nothing() -> None:
    story = {"id": "S1", "title": "t", "may_change_nothing": True}
    with pytest.raises(PlanError, match="unknown field 'may_change_nothing'"):
        stories_from_data({"stories": [story]})
