"""The labelled planner set: goals as people write them, with the units or steps they
name and the files each story may change, planned offline against a repository's files.

Each row of ``goals.jsonl`` names a repository (its file list is in ``repos.json``, or
none), the mode the intake should propose, how the goal splits (``units``, ``steps`` or
not at all) and every part's write surface. A row agrees when the intake's mode, the
split and every surface match. The agreement is printed (``pytest -s``) and must stay at
or above 95%. The ``holdout`` rows were written after the rules and first run against
them as they stood (16 of 20 agreed; the four misses were fixed, see docs/planning.md).

The second half checks the promise behind the shared reading, on this set and on the
intake's labelled set: a goal proposed as parallel is one the planner splits into
independent units, and a goal proposed as sequential is one it splits into steps.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from baro_intake.classifier import classify
from baro_planner.deterministic import plan_goal
from baro_shared.goals.split import split_goal
from baro_shared.goals.text import ACTION_VERBS
from baro_shared.inputs import InputProblem, check_goal
from baro_shared.schemas import Caps, Story
from baro_shared.surfaces import surfaces_overlap

HERE = Path(__file__).parent
MIN_AGREEMENT = 0.95
WIDE = Caps(max_stories=16, parallelism=4)


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


GOALS = _load(HERE / "goals.jsonl")
INTAKE_GOALS = _load(HERE.parent / "intake" / "goals.jsonl")
REPOS: dict[str, list[str]] = json.loads((HERE / "repos.json").read_text(encoding="utf-8"))


def _files(row: dict[str, Any]) -> list[str] | None:
    return REPOS[row["repo"]] if row.get("repo") else None


def _planned(row: dict[str, Any]) -> list[Story] | None:
    mode = "sequential" if row["split"] == "steps" else "parallel"
    return plan_goal(row["goal"], mode, WIDE, _files(row))


def disagreements(row: dict[str, Any]) -> list[str]:
    """What the intake and the planner got wrong about one labelled goal (empty: agrees)."""
    wrong = []
    decision = classify(row["goal"])
    if decision.mode != row["mode"]:
        wrong.append(f"mode {decision.mode} ({decision.reason}), expected {row['mode']}")
    split = split_goal(row["goal"], _files(row))
    if split.kind != row["split"]:
        wrong.append(f"split {split.kind} ({split.refused}), expected {row['split']}")
    elif split.kind is not None:
        stories = _planned(row) or []
        surfaces = [s.write_surface for s in stories if not s.may_change_nothing]
        if surfaces != row["parts"]:
            wrong.append(f"surfaces {surfaces}, expected {row['parts']}")
        registering = [s.write_surface for s in stories if s.may_change_nothing]
        if registering != ([row["register"]] if "register" in row else []):
            wrong.append(f"registered in {registering}, expected {row.get('register')}")
    return wrong


def test_the_set_is_large_and_varied() -> None:
    assert len(GOALS) >= 60
    assert len({row["id"] for row in GOALS}) == len(GOALS)
    for row in GOALS:
        assert row["set"] in {"tune", "holdout"}
        assert row["mode"] in {"focused", "sequential", "parallel"}
        assert row["split"] in {None, "units", "steps"}
        assert row["repo"] is None or row["repo"] in REPOS
        assert (row["split"] is None) == (row["parts"] == [])
    splits = [row["split"] for row in GOALS]
    assert splits.count("units") >= 25 and splits.count("steps") >= 10 and splits.count(None) >= 15
    assert sum("\n" in row["goal"] for row in GOALS) >= 6


@pytest.mark.parametrize("split", ["tune", "holdout"])
def test_agreement_with_the_labels(split: str) -> None:
    rows = [row for row in GOALS if row["set"] == split]
    misses = {row["id"]: problems for row in rows if (problems := disagreements(row))}
    agreement = 1 - len(misses) / len(rows)
    print(
        f"\nplanner goal set ({split}): {len(rows) - len(misses)}/{len(rows)} agree ({agreement:.1%})"
    )
    for goal_id, problems in misses.items():
        print(f"  {goal_id}: {'; '.join(problems)}")
    assert agreement >= MIN_AGREEMENT, misses


@pytest.mark.parametrize("goal_id", ["u01", "u02", "u03", "u04", "u06", "u08", "u10", "s01"])
def test_the_goals_users_asked_about_plan_right(goal_id: str) -> None:
    (row,) = [row for row in GOALS if row["id"] == goal_id]
    assert disagreements(row) == []


def _ids(value: object) -> str:
    return value if isinstance(value, str) and len(value) < 6 else ""


def _every_goal() -> list[tuple[str, str, list[str] | None]]:
    own = [(row["id"], row["goal"], _files(row)) for row in GOALS]
    return own + [(row["id"], row["goal"], None) for row in INTAKE_GOALS]


@pytest.mark.parametrize(("goal_id", "goal", "files"), _every_goal(), ids=_ids)
def test_the_proposed_mode_is_the_plan_the_planner_makes(
    goal_id: str, goal: str, files: list[str] | None
) -> None:
    decision = classify(goal)
    if decision.mode == "parallel":
        planned = plan_goal(goal, "parallel", WIDE, files)
        assert planned is not None
        stories = [s for s in planned if not s.may_change_nothing]
        registering = [s for s in planned if s.may_change_nothing]
        # the intake counts the story registering new endpoints or commands; the planner
        # makes it when the repository's files show where they are registered
        assert len(stories) + int(split_goal(goal).registers) == decision.caps.max_stories
        assert len(registering) <= int(split_goal(goal).registers)
        assert all(s.depends_on == [u.id for u in stories] for s in registering)
        assert all(not s.depends_on for s in stories)
        for i, a in enumerate(stories):
            for b in stories[i + 1 :]:
                assert not surfaces_overlap(a.write_surface, b.write_surface), (a.id, b.id)
    elif decision.mode == "sequential":
        stories = plan_goal(goal, "sequential", WIDE, files)
        assert stories is not None and len(stories) == decision.caps.max_stories
        assert [s.depends_on for s in stories[1:]] == [[s.id] for s in stories[:-1]]


_pieces = st.sampled_from(
    [
        "Add tests for",
        "a.py",
        "src/b.py",
        ", ",
        " and ",
        "\n- ",
        "\n1. ",
        " then ",
        "First,",
        "each in its own file",
        "the billing service",
        "an orders endpoint",
        "(x.json, y.json)",
        "under tests/",
        ": ",
        ". ",
        "`cmd`",
        "POST /users",
        "Translate the README into ",
        "German",
        "locales/en.json",
        ".git/x.md",
        " versions of ",
        "src/main/java/A.java",
        "lib/a.ex",
        "when it fails",
        "format.ts",
        ", one JSON file each",
    ]
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(
    st.lists(st.one_of(_pieces, st.text(max_size=12)), max_size=12), st.sampled_from(sorted(REPOS))
)
@example(["\n- ", " then ", "\n- ", "Add tests for"], sorted(REPOS)[0])
@example(["Add tests for", "\n1. ", ","], sorted(REPOS)[0])
@example(["1. Add tests for", "\n2. -"], sorted(REPOS)[0])
@example(["(x.json, y.json)", "\n- ", "(x.json, y.json)", "a.py"], "beside")  # a unit with no text
@example(["Translate ", ".git/x.md", " into German and French."], "py")
def test_any_goal_splits_without_error_into_disjoint_parts(pieces: list[str], repo: str) -> None:
    goal = "".join(pieces)
    split = split_goal(goal, REPOS[repo])
    if split.kind == "units":
        assert split.count >= 2
        for i, a in enumerate(split.parts):
            for b in split.parts[i + 1 :]:
                assert not (
                    a.surface and b.surface and surfaces_overlap(list(a.surface), list(b.surface))
                )
    try:
        check_goal(goal)
    except InputProblem:
        return  # refused at the door (blank, control characters): never planned
    for mode in ("sequential", "parallel"):
        plan_goal(goal, mode, WIDE, REPOS[repo])  # a plan, or None: never an exception


@pytest.mark.parametrize(
    ("goal", "repo", "surfaces"),
    [
        ("Translate the README into German and French.", "py", [["README.de.md"], ["README.fr.md"]]),
        ("Add German and Japanese translations of locales/en.json.", "web",
         [["locales/de.json"], ["locales/ja.json"]]),
        # the repository keeps its translations in language directories (docs/fr/)
        ("Translate docs/intro.md into German and Spanish.", "mono",
         [["docs/de/intro.md"], ["docs/es/intro.md"]]),
    ],
)  # fmt: skip
def test_translations_named_by_language_go_where_the_repository_keeps_them(
    goal: str, repo: str, surfaces: list[list[str]]
) -> None:
    assert classify(goal).mode == "parallel"
    assert [list(p.surface) for p in split_goal(goal, REPOS[repo]).parts] == surfaces


def test_languages_without_the_document_they_translate_are_not_units() -> None:
    # "the error messages" live wherever the code keeps them: nothing says which file
    goal = "Translate the error messages into German and French."
    assert split_goal(goal, REPOS["py"]).kind is None
    assert classify(goal).mode == "focused"


@pytest.mark.parametrize(
    "filler",
    [" ", "\n", " \t", "\n ", "a-", "a+", "-a", "a_", "a, ", "an AbController and ", "a_b.go "],
    ids=repr,
)
def test_a_goal_padded_with_repetition_is_read_in_linear_time(filler: str) -> None:
    # a guard against matching that is quadratic in a run of one kind of character (8,000
    # blanks took 4 s to read and plan, a hyphenated run 3.6 s; now about 0.2 s): not a
    # latency figure
    goal = "Add tests for a.py and b.py, each in its own file" + filler * (8_000 // len(filler))
    started = time.perf_counter()
    classify(goal)
    split_goal(goal, REPOS["py"])
    for mode in ("parallel", "sequential"):
        plan_goal(goal, mode, WIDE, REPOS["py"])
    assert time.perf_counter() - started < 3


def test_new_files_in_a_numbered_sequence_are_not_split() -> None:
    # the intake reads the goal without the repository's files; the planner, seeing the
    # numbered directory, does not give two stories the same next number
    goal = "Write decision records docs/adr/bus.md and docs/adr/storage.md separately"
    split = split_goal(goal, REPOS["db"])
    assert split.kind is None
    assert split.refused is not None and "0002-use-nats.md" in split.refused
    assert split_goal(goal, None).kind == "units"


@pytest.mark.parametrize(
    ("goal_id", "titles"),
    [
        ("u01", ["Add tests for a.py", "Add tests for b.py", "Add tests for c.py"]),
        ("u03", ["Add a users endpoint", "Add an orders endpoint", "Add a products endpoint"]),
        ("u13", ["Add a /healthz endpoint to the billing service"]),
        ("u32", ["Give the cart module its own logger"]),
        ("u06", ["Add three GitHub Actions workflows, each in its own file: lint"]),
        ("u80", ["Add type hints to the claude mapper", "Add type hints to the codex mapper"]),
        ("u83", ["Add `login` command to the CLI", "Add `logout` command to the CLI"]),
        ("u84", ["Add docstrings to pricing.py", "Add docstrings to tax.py"]),
        ("u85", ["Convert src/utils/format.ts to use Intl APIs"]),
        ("u86", ["Add a Footer component with a test", "Add a Header component with a test"]),
        ("u87", ["Add retries to the S3 storage backend"]),
        ("u88", ["Add a CHANGELOG.md to the core package"]),
        ("u92", ["Add the S3 storage backend's missing `delete` method"]),
        ("u93", ["Add Grafana dashboards for latency in deploy/dashboards/"]),
        ("u105", ["Add German translation of locales/en.json"]),
        ("x33", ["We need Spanish version of locales/en.json"]),
        ("x25", ["Translate docs/guide/install.md to German"]),
        ("x69", ["Add the `Coupon` model", "Apply coupons at checkout"]),
    ],
)
def test_a_unit_s_story_reads_as_that_unit_s(goal_id: str, titles: list[str]) -> None:
    # its story is one of the units already: no "each in its own module", no plural kind;
    # a clause that names the unit stays
    (row,) = [row for row in GOALS if row["id"] == goal_id]
    stories = _planned(row) or []
    assert [s.title for s in stories][: len(titles)] == titles


def _steps_goals() -> list[tuple[str, str]]:
    own = [(row["id"], row["goal"]) for row in GOALS]
    return [(i, g) for i, g in own + [(r["id"], r["goal"]) for r in INTAKE_GOALS] if g]


@pytest.mark.parametrize(("goal_id", "goal"), _steps_goals(), ids=_ids)
def test_no_action_of_a_stepped_goal_is_lost(goal_id: str, goal: str) -> None:
    # every action the goal names is in its head or one of its steps: a step dropped from
    # the plan is work silently not done
    split = split_goal(goal, None)
    if split.kind != "steps":
        return
    kept = " ".join([split.steps.head or "", *(part.text for part in split.parts)]).lower()
    named = {w for w in re.findall(r"[a-z]+", goal.lower()) if w in ACTION_VERBS}
    assert named <= set(re.findall(r"[a-z]+", kept)), named - set(re.findall(r"[a-z]+", kept))
