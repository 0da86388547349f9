"""baro_planner.deterministic.plan_goal on realistic goals."""

from __future__ import annotations

import pytest

from baro_planner.deterministic import plan_goal
from baro_shared.plan import PlanError
from baro_shared.schemas import Caps, Mode, Story

WIDE = Caps(max_stories=8, parallelism=4)


def plan(
    goal: str, mode: Mode = "parallel", caps: Caps = WIDE, files: list[str] | None = None
) -> list[Story]:
    stories = plan_goal(goal, mode, caps, files)
    assert stories is not None, "expected a deterministic plan"
    return stories


def shape(stories: list[Story]) -> list[tuple[str, str, list[str], list[str]]]:
    return [(s.id, s.title, s.depends_on, s.write_surface) for s in stories]


# --------------------------------------------------------------------------- focused


def test_focused_bugfix_is_the_goal_as_one_story() -> None:
    goal = "Fix the crash in parser.py when the input file is empty.\nIt raises IndexError."
    (story,) = plan(goal, "focused", Caps())
    assert story.id == "S1"
    assert story.title == "Fix the crash in parser.py when the input file is empty"
    assert story.description == goal
    assert story.depends_on == []
    assert story.write_surface == [], "a focused story is not fenced in"


def test_focused_wins_over_any_structure() -> None:
    goal = "1. parse the flag in cli.py 2. use it in runner.py"
    assert len(plan(goal, "focused")) == 1


def test_empty_goal_is_an_error() -> None:
    with pytest.raises(PlanError, match="the goal is empty"):
        plan_goal("  ", "focused", Caps())


# --------------------------------------------------------------------------- chains


def test_numbered_steps_on_their_own_lines_make_a_chain() -> None:
    goal = (
        "Add a --verbose flag:\n"
        "1. parse it in cli.py\n"
        "2. pass it through to runner.py\n"
        "3. document it in README.md"
    )
    stories = plan(goal, "sequential")
    assert shape(stories) == [
        ("S1", "Parse it in cli.py", [], ["cli.py"]),
        ("S2", "Pass it through to runner.py", ["S1"], ["runner.py"]),
        ("S3", "Document it in README.md", ["S2"], ["README.md"]),
    ]
    assert stories[1].description.startswith("pass it through to runner.py\n\nThis is step 2 of 3")
    assert stories[1].description.endswith(f"Goal:\n{goal}")


def test_inline_numbered_steps() -> None:
    goal = "Migrate the config: 1) read settings.toml 2) drop the legacy env vars 3) update docs/config.md"
    stories = plan(goal, "sequential")
    assert [s.title for s in stories] == [
        "Read settings.toml",
        "Drop the legacy env vars",
        "Update docs/config.md",
    ]
    assert [s.depends_on for s in stories] == [[], ["S1"], ["S2"]]


def test_step_word_markers() -> None:
    goal = "Step 1: add the model in models.py\nStep 2: expose it in api.py"
    assert [s.title for s in plan(goal)] == ["Add the model in models.py", "Expose it in api.py"]


def test_numbers_out_of_sequence_are_not_steps() -> None:
    assert (
        plan_goal("Bump the version to 2. Release notes go in CHANGES.md", "sequential", WIDE)
        is None
    )


def test_first_then_finally_makes_a_chain() -> None:
    goal = (
        "First, extract the parser into parser.py, then add a --strict flag to cli.py, "
        "and finally document the flag in README.md."
    )
    stories = plan(goal, "sequential")
    assert shape(stories) == [
        ("S1", "Extract the parser into parser.py", [], ["parser.py"]),
        ("S2", "Add a --strict flag to cli.py", ["S1"], ["cli.py"]),
        ("S3", "Document the flag in README.md", ["S2"], ["README.md"]),
    ]


def test_first_then_after_a_preamble() -> None:
    goal = "Rework logging: first replace print calls with a logger. Then add a --log-level flag."
    assert [s.title for s in plan(goal)] == [
        "Replace print calls with a logger",
        "Add a --log-level flag",
    ]


def test_then_without_first_is_left_to_the_model() -> None:
    assert (
        plan_goal("If the cache is stale, then refresh it in cache.py", "sequential", WIDE) is None
    )


def test_more_steps_than_the_cap_are_grouped_in_order() -> None:
    goal = "1. add a in a.py 2. add b in b.py 3. add c in c.py 4. add d in d.py 5. add e in e.py"
    stories = plan(goal, "sequential", Caps(max_stories=2, parallelism=1))
    assert shape(stories) == [
        (
            "S1",
            "Steps 1-3: add a in a.py; add b in b.py; add c in c.py",
            [],
            ["a.py", "b.py", "c.py"],
        ),
        ("S2", "Steps 4-5: add d in d.py; add e in e.py", ["S1"], ["d.py", "e.py"]),
    ]
    assert stories[0].description.startswith("1. add a in a.py\n2. add b in b.py\n3. add c in c.py")


# --------------------------------------------------------------------------- units


def test_tests_for_four_files_make_four_parallel_stories() -> None:
    stories = plan("add tests for a.py, b.py, c.py and d.py")
    assert shape(stories) == [
        ("S1", "Add tests for a.py", [], ["tests/test_a.py"]),
        ("S2", "Add tests for b.py", [], ["tests/test_b.py"]),
        ("S3", "Add tests for c.py", [], ["tests/test_c.py"]),
        ("S4", "Add tests for d.py", [], ["tests/test_d.py"]),
    ]
    assert "b.py, c.py and d.py are handled by other stories" in stories[0].description


def test_tests_own_the_code_under_test_only_when_the_goal_changes_it() -> None:
    stories = plan("Add tests for a.py and b.py, and fix any bug they find in each")
    assert [s.write_surface for s in stories] == [
        ["tests/test_a.py", "a.py"],
        ["tests/test_b.py", "b.py"],
    ]


def test_units_resolve_against_the_repository_files() -> None:
    files = [
        "src/pkg/a.py",
        "src/pkg/b.py",
        "tests/unit/test_a.py",
        "web/src/widget.ts",
        "README.md",
    ]
    stories = plan("Add tests for `a.py`, b.py and web/src/widget.ts.", files=files)
    assert [s.write_surface for s in stories] == [
        ["tests/unit/test_a.py"],  # the existing test file
        ["tests/test_b.py"],  # a new one where this repository keeps its tests
        ["web/src/widget.test.ts"],  # beside the module, as JavaScript tests usually are
    ]
    assert stories[2].title == "Add tests for web/src/widget.ts"


def test_units_without_tests_own_only_their_paths() -> None:
    stories = plan("Add type hints to services/intake/, services/planner/ and services/merger/")
    assert [s.write_surface for s in stories] == [
        ["services/intake/**"],
        ["services/planner/**"],
        ["services/merger/**"],
    ]


def test_bulleted_units() -> None:
    goal = "Add docstrings to these modules:\n- src/a.py\n- src/b.py\n- src/c.py"
    stories = plan(goal)
    assert shape(stories) == [
        ("S1", "Add docstrings to these modules: src/a.py", [], ["src/a.py"]),
        ("S2", "Add docstrings to these modules: src/b.py", [], ["src/b.py"]),
        ("S3", "Add docstrings to these modules: src/c.py", [], ["src/c.py"]),
    ]


def test_bullets_with_their_own_actions() -> None:
    goal = (
        "Improve the docs:\n- README.md: add an install section\n- docs/usage.md: document --json"
    )
    stories = plan(goal)
    assert shape(stories) == [
        ("S1", "README.md: add an install section", [], ["README.md"]),
        ("S2", "docs/usage.md: document --json", [], ["docs/usage.md"]),
    ]


def test_more_units_than_the_cap_are_grouped() -> None:
    stories = plan(
        "Add tests for a.py, b.py, c.py, d.py and e.py", caps=Caps(max_stories=2, parallelism=2)
    )
    assert [s.title for s in stories] == [
        "Add tests for a.py, b.py and c.py",
        "Add tests for d.py and e.py",
    ]
    assert stories[1].write_surface == ["tests/test_d.py", "tests/test_e.py"]


@pytest.mark.parametrize(
    "goal",
    [
        # work beyond the units would be repeated in every story
        "Add tests for a.py and b.py and update the changelog",
        "Add tests for a.py and b.py. Also bump the version.",
        # the units are one change
        "Make a.py and b.py share one parser",
        "Rename the helper across a.py and b.py",
        "Merge a.py and b.py",
        # not one action over one list
        "Fix the bug in a.py and update b.py",
        "Move a.py and b.py into lib/",
        "Compare a.py or b.py",
        # bullets followed by more text
        "Add docstrings:\n- a.py\n- b.py\nThen publish the docs.",
        "Tidy up:\n- a.py\n- the build scripts",
    ],
)
def test_goals_whose_units_are_not_independent_go_to_the_model(goal: str) -> None:
    assert plan_goal(goal, "parallel", WIDE) is None


@pytest.mark.parametrize(
    "goal",
    [
        "Refactor the storage layer to be easier to test",
        "Make the CLI nicer",
        "Use Node.js and Vue.js for the dashboard",
        "Support read/write and client/server modes",
        "https://github.com/o/r/pull/12",
    ],
)
def test_goals_without_structure_give_none(goal: str) -> None:
    for mode in ("sequential", "parallel"):
        assert plan_goal(goal, mode, WIDE) is None


def test_every_story_is_a_piece_of_the_goal() -> None:
    goal = "add tests for a.py, b.py, c.py and d.py"
    for story in plan(goal):
        assert story.description.endswith(f"Goal:\n{goal}")
        assert story.acceptance == [], "no invented acceptance criteria"


UNRELATED_CHORES = (
    "Cleanup before release:\n- remove the dead code in a.py\n- fix the flaky test in "
    "tests/test_b.py\n- update docs/install.md for the new name\n"
)


def test_listed_chores_said_to_be_unrelated_are_units() -> None:
    stories = plan(UNRELATED_CHORES + "These are unrelated, do them in parallel.")
    assert [s.write_surface for s in stories] == [
        ["a.py"],
        ["tests/test_b.py"],
        ["docs/install.md"],
    ]
    assert all(not s.depends_on for s in stories)
    assert stories[1].description.startswith("fix the flaky test in tests/test_b.py")


@pytest.mark.parametrize(
    "tail",
    [
        "",  # no word that they are unrelated: listed steps of one feature
        "These are unrelated, but keep install.md and a.py in sync.",  # a shared surface
    ],
)
def test_listed_chores_are_units_only_when_said_apart_and_apart(tail: str) -> None:
    stories = plan_goal(UNRELATED_CHORES + tail, "parallel", WIDE)
    assert stories is None or any(s.depends_on for s in stories)


def test_a_unit_and_the_file_it_is_placed_in_are_one_unit() -> None:
    goal = "Add GET /users in routes/users.js and GET /orders in routes/orders.js, each with a test"
    stories = plan(goal)
    assert [s.write_surface[-1] for s in stories] == ["routes/users.js", "routes/orders.js"]
    assert "GET /users in routes/users.js" in stories[0].description


def test_classes_named_for_their_kind_go_beside_the_others_of_that_kind() -> None:
    files = ["app/Http/Controllers/UserController.php", "app/Models/User.php"]
    goal = "Add an OrderController and a ProductController, each with index and show actions."
    stories = plan(goal, files=files)
    assert [s.write_surface for s in stories] == [
        ["app/Http/Controllers/OrderController.php"],
        ["app/Http/Controllers/ProductController.php"],
    ]
    assert stories[0].title == "Add an OrderController with index and show actions"


def test_a_new_file_named_after_an_existing_one_goes_beside_it() -> None:
    files = ["src/components/Button.tsx", "src/components/Card.tsx", "src/App.tsx"]
    goal = "Write stories for Button and Card (Button.stories.tsx and Card.stories.tsx), one each."
    assert [s.write_surface for s in plan(goal, files=files)] == [
        ["src/components/Button.stories.tsx"],
        ["src/components/Card.stories.tsx"],
    ]
    # a plain new name is not placed after a namesake ("config.yaml" beside "config.py")
    assert [
        s.write_surface for s in plan("Add a.yaml and b.yaml, each on its own", files=["src/a.py"])
    ] == [
        ["a.yaml"],
        ["b.yaml"],
    ]


def test_a_listed_directory_and_the_file_named_after_it_are_one_unit() -> None:
    files = ["internal/store/store.go", "internal/queue/queue.go"]
    goal = "Add benchmarks for internal/store and internal/queue, in store_bench_test.go and queue_bench_test.go."
    assert [s.write_surface for s in plan(goal, files=files)] == [
        ["internal/store/store_bench_test.go"],
        ["internal/queue/queue_bench_test.go"],
    ]


def test_a_step_naming_a_class_changes_its_file() -> None:
    files = [
        "src/main/java/a/Cart.java",
        "src/main/java/a/Order.java",
        "src/test/java/a/CartTest.java",
    ]
    goal = (
        "Step 1: add a discount to Cart.java. Step 2: apply it in Order.java. "
        "Step 3: update CartTest to cover both."
    )
    stories = plan(goal, "sequential", files=files)
    assert stories[2].write_surface == ["src/test/java/a/CartTest.java"]


def test_rust_integration_tests_go_in_tests_and_unit_tests_in_the_module() -> None:
    files = ["src/lib.rs", "src/parser.rs", "src/eval.rs", "tests/lexer.rs"]
    under_tests = "Add integration tests for src/parser.rs and src/eval.rs, each in its own file under tests/."
    assert [s.write_surface for s in plan(under_tests, files=files)] == [
        ["tests/parser.rs"],
        ["tests/eval.rs"],
    ]
    in_module = "Add unit tests for src/parser.rs and src/eval.rs, each on its own."
    assert [s.write_surface for s in plan(in_module, files=files)] == [
        ["src/parser.rs"],
        ["src/eval.rs"],
    ]


def test_numbered_items_led_by_their_files_are_steps_when_their_actions_differ() -> None:
    steps = "Expiry:\n1. api.ts: surface 401s as errors\n2. auth.ts: catch them and sign out\n"
    stories = plan(steps, "sequential")
    assert [(s.write_surface, s.depends_on) for s in stories] == [
        (["api.ts"], []),
        (["auth.ts"], ["S1"]),
    ]
    units = "READMEs:\n1. core/: add a short README\n2. http/: add a short README\n"
    assert all(not s.depends_on for s in plan(units))


def test_a_feature_before_a_dash_heads_its_steps() -> None:
    goal = (
        "Port the upload from s3.py to gcs.py — first extract it in s3.py, then reuse it in gcs.py."
    )
    stories = plan(goal, "sequential")
    assert [s.write_surface for s in stories] == [["s3.py"], ["gcs.py"]]


@pytest.mark.parametrize(
    ("goal", "files", "surfaces"),
    [
        ("Need e2e coverage for signup and checkout. Playwright, one spec per flow.",
         ["e2e/login.spec.ts"], [["e2e/signup.spec.ts"], ["e2e/checkout.spec.ts"]]),
        ("Zero coverage on pricing and tax (src/shop/). Write a test module for each one.",
         ["src/shop/pricing.py", "src/shop/tax.py", "services/tax/app.py", "tests/test_a.py"],
         [["tests/test_pricing.py"], ["tests/test_tax.py"]]),
        ("Create two components next to Nav.tsx: Footer and Sidebar, each in its own file.",
         ["ui/Nav.tsx"], [["ui/Footer.tsx"], ["ui/Sidebar.tsx"]]),
        ("Add tests: an OrderTest for app/Order.php and a UserTest for the user, separately.",
         ["app/Order.php", "app/User.php", "tests/Unit/CartTest.php"],
         [["tests/Unit/OrderTest.php"], ["tests/Unit/UserTest.php"]]),
        ("Each storage backend (s3, gcs) needs its own test module, like tests/storage/test_local.py.",
         ["src/storage/s3.py", "src/storage/gcs.py", "tests/storage/test_local.py"],
         [["tests/storage/test_s3.py"], ["tests/storage/test_gcs.py"]]),
        ("auth.go and queue.go have no tests yet. Add them, one _test.go per package, independently.",
         ["internal/auth/auth.go", "internal/queue/queue.go"],
         [["internal/auth/auth_test.go"], ["internal/queue/queue_test.go"]]),
        ("Create Invoice and Payment models next to User.php; they are independent.",
         ["app/Models/User.php"], [["app/Models/Invoice.php"], ["app/Models/Payment.php"]]),
    ],
)  # fmt: skip
def test_units_named_in_more_ways(goal: str, files: list[str], surfaces: list[list[str]]) -> None:
    assert [s.write_surface for s in plan(goal, files=files)] == surfaces


def test_registering_what_the_units_add_is_not_more_work() -> None:
    files = ["main.py", "routers/__init__.py", "routers/items.py"]
    goal = "Add users and orders routers (separate modules) and include them in the app."
    stories = plan(goal, files=files)
    assert [s.write_surface for s in stories] == [
        ["routers/users.py"],
        ["routers/orders.py"],
        ["routers/__init__.py", "main.py"],
    ]
    assert stories[0].title.startswith("Add users router")


def test_a_step_led_by_its_file_may_be_short() -> None:
    goal = "1. routes/health.js: add a /ready check\n2. app.js: mount it\n3. health.test.js: cover both"
    stories = plan(goal, "sequential")
    assert [s.depends_on for s in stories] == [[], ["S1"], ["S2"]]


def test_one_more_of_the_same_to_another_place_is_a_list() -> None:
    goal = "Add an exporter to internal/queue and one to internal/store; they're independent."
    files = ["internal/queue/queue.go", "internal/store/store.go"]
    assert [s.write_surface for s in plan(goal, files=files)] == [
        ["internal/queue/**"],
        ["internal/store/**"],
    ]


def test_registering_new_units_afterwards_is_not_a_step_of_its_own() -> None:
    files = ["main.py", "routers/__init__.py", "routers/items.py"]
    goal = "Add a health router and a metrics router like routers/items.py, then register both in main.py"
    stories = plan(goal, files=files)
    assert [(s.write_surface, s.depends_on) for s in stories] == [
        (["routers/health.py"], []),
        (["routers/metrics.py"], []),
        (["routers/__init__.py", "main.py"], ["S1", "S2"]),
    ]


def test_a_test_class_and_the_file_it_tests_are_one_unit() -> None:
    files = ["app/Order.php", "app/Http/UserController.php", "tests/Unit/CartTest.php"]
    goal = "Order.php and UserController.php have no tests. Add an OrderTest and a UserControllerTest, separately."
    stories = plan(goal, files=files)
    assert [s.write_surface for s in stories] == [
        ["tests/Unit/OrderTest.php"],
        ["tests/Unit/UserControllerTest.php"],
    ]
    assert stories[0].title == "Add an OrderTest"


def test_and_last_is_the_last_step_but_last_year_is_not() -> None:
    goal = "Rename it: first in core/, then update http/ to the new name, and last cli/."
    assert len(plan(goal, "sequential")) == 3
    assert plan_goal("Update the README and last year's report", "sequential", WIDE) is None


def test_a_failure_fixed_in_both_places_stays_one_change() -> None:
    assert (
        plan_goal("Home.tsx and Settings.tsx crash on null user. Fix both.", "parallel", WIDE)
        is None
    )


@pytest.mark.parametrize(
    "goal",
    [
        "New REST routes, one router file each:\n- users\n- orders",
        "`users` and `orders` are missing from the API. Add them as separate router files.",
    ],
)
def test_new_units_named_without_a_verb_before_them_are_registered(goal: str) -> None:
    files = ["src/app.js", "src/routes/index.js", "src/routes/health.js"]
    stories = plan(goal, files=files)
    assert [s.write_surface for s in stories] == [
        ["src/routes/users.js"],
        ["src/routes/orders.js"],
        ["src/routes/index.js", "src/app.js"],
    ]


def test_files_each_given_a_thing_of_their_own_are_units_when_said_apart() -> None:
    goal = "Add an `active()` scope to User.php and a `paid()` scope to Order.php, in parallel."
    stories = plan(goal, files=["app/Models/User.php", "app/Models/Order.php"])
    assert [(s.title, s.write_surface) for s in stories] == [
        ("Add an `active()` scope to User.php", ["app/Models/User.php"]),
        ("Add a `paid()` scope to Order.php", ["app/Models/Order.php"]),
    ]
    # nothing says a test and a fixture are apart: the test may well use the fixture
    together = "Add a test to tests/test_a.py and a fixture to tests/conftest.py"
    assert plan_goal(together, "parallel", WIDE) is None
