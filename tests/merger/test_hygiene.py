from __future__ import annotations

from baro_merger.config import parse_baro_config
from baro_merger.hygiene import ArtifactRules, Change, select_dropped


def dropped(
    paths: dict[str, str], surface: list[str], goal: str = "do the thing", rules=None
) -> list[str]:
    changes = [Change(path, status) for path, status in paths.items()]
    args = (changes, surface, goal) if rules is None else (changes, surface, goal, rules)
    return [d.path for d in select_dropped(*args)]


REAL_WORK = {"src/app.py": "M", "tests/test_app.py": "A"}


def test_planning_files_adr_drafts_and_caches_are_dropped() -> None:
    changes = {
        **REAL_WORK,
        "prd.json": "A",
        "progress.txt": "A",
        "PLAN.md": "A",
        "docs/adr/0001-use-x.md": "A",
        ".baro/state.json": "A",
        "src/__pycache__/app.cpython-311.pyc": "A",
        "web/node_modules/left-pad/index.js": "A",
        ".DS_Store": "A",
        "debug.log": "A",
    }
    assert dropped(changes, ["src/app.py", "tests/"]) == sorted(set(changes) - set(REAL_WORK))


def test_nothing_of_the_real_work_is_dropped() -> None:
    assert dropped(REAL_WORK, []) == []


def test_surface_that_names_an_artifact_keeps_it() -> None:
    changes = {"prd.json": "A", "docs/adr/0001-use-x.md": "A", "package-lock.json": "M"}
    assert dropped(changes, ["prd.json", "docs/adr/*.md", "package-lock.json"]) == []
    assert dropped(changes, ["docs/adr/"]) == ["package-lock.json", "prd.json"]


def test_catch_all_surfaces_name_nothing() -> None:
    changes = {"prd.json": "A", "src/__pycache__/m.pyc": "A", "docs/adr/0002-y.md": "A"}
    assert dropped(changes, ["**"]) == sorted(changes)
    assert dropped(changes, ["src/**", "docs/"]) == sorted(changes)


def test_goal_that_mentions_an_artifact_keeps_it() -> None:
    assert dropped({"PLAN.md": "A"}, [], goal="Write PLAN.md for the migration") == []
    assert dropped({"docs/adr/0003-cache.md": "A"}, [], goal="Record an ADR for the cache") == []
    assert dropped({"docs/adr/0003-cache.md": "A"}, [], goal="see docs/adr/ for the format") == []
    assert dropped({"prd.json": "A"}, [], goal="report progress") == ["prd.json"]
    # mentioning a parent further up does not keep tool caches
    assert dropped({"src/__pycache__/m.pyc": "A"}, [], goal="tidy src") == ["src/__pycache__/m.pyc"]


def test_lockfile_without_manifest_change_is_dropped() -> None:
    assert dropped({"src/app.js": "M", "package-lock.json": "M"}, ["src/"]) == ["package-lock.json"]
    assert dropped({"yarn.lock": "A", "Cargo.lock": "M", "go.sum": "M", "uv.lock": "M"}, []) == [
        "Cargo.lock",
        "go.sum",
        "uv.lock",
        "yarn.lock",
    ]


def test_lockfile_with_its_manifest_changed_is_kept() -> None:
    assert dropped({"package.json": "M", "package-lock.json": "M"}, []) == []
    # a workspace member's manifest justifies the root lockfile
    assert dropped({"crates/a/Cargo.toml": "M", "Cargo.lock": "M"}, []) == []
    assert dropped({"Gemfile.lock": "M", "mygem.gemspec": "M"}, []) == []
    # but a manifest elsewhere does not
    assert dropped({"a/package.json": "M", "b/package-lock.json": "M"}, []) == [
        "b/package-lock.json"
    ]


def test_lockfile_needs_an_explicit_name_in_the_surface_or_a_hint_in_the_goal() -> None:
    lock = {"web/package-lock.json": "M"}
    assert dropped(lock, ["web/"]) == ["web/package-lock.json"]
    assert dropped(lock, ["web/package-lock.json"]) == []
    assert dropped(lock, ["**/package-lock.json"]) == []
    assert dropped(lock, [], goal="Upgrade lodash to fix the audit warning") == []
    assert dropped(lock, [], goal="regenerate the lockfile") == []


def test_artifact_patterns_ignore_case() -> None:
    assert dropped({"Plan.md": "A", "Progress.MD": "A", "TODO.md": "A"}, []) == [
        "Plan.md",
        "Progress.MD",
        "TODO.md",
    ]


def test_configured_patterns() -> None:
    config = parse_baro_config(
        """
        [artifacts]
        drop = ["*.orig", "tmp/"]
        keep = ["PLAN.md"]
        lockfiles = false
        """
    )
    rules = config.artifacts
    changes = {
        "PLAN.md": "A",
        "a/b.orig": "A",
        "x/tmp/out.bin": "A",
        "yarn.lock": "M",
        "prd.json": "A",
    }
    assert dropped(changes, [], rules=rules) == ["a/b.orig", "prd.json", "x/tmp/out.bin"]
    replaced = parse_baro_config(
        '[artifacts]\ndrop = ["*.orig"]\nreplace_defaults = true\n'
    ).artifacts
    assert dropped(changes, [], rules=replaced) == ["a/b.orig", "yarn.lock"]


def test_reasons_say_why() -> None:
    result = select_dropped(
        [Change("prd.json", "A"), Change("package-lock.json", "M")], [], "x", ArtifactRules()
    )
    reasons = {d.path: d.reason for d in result}
    assert "prd.json" in reasons["prd.json"]
    assert "package.json" in reasons["package-lock.json"]
