from __future__ import annotations

import re

import pytest

from baro_merger import naming


@pytest.mark.parametrize(
    ("goal", "slug"),
    [
        ("Add a --json flag to the CLI", "add-a-json-flag-to-the-cli"),
        ("  Fix: crash when config is EMPTY!  ", "fix-crash-when-config-is-empty"),
        ("Café résumé", "cafe-resume"),
        ("???", "change"),
        ("日本語のみ", "change"),
        ("https://github.com/o/r/issues/12", "https-github-com-o-r-issues-12"),
    ],
)
def test_slugify(goal: str, slug: str) -> None:
    assert naming.slugify(goal) == slug


def test_slugify_long_goal_is_cut_at_a_word_without_trailing_dash() -> None:
    goal = "Refactor the payment reconciliation module so that retries are idempotent everywhere"
    slug = naming.slugify(goal)
    assert len(slug) <= 48
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert goal.lower().replace(" ", "-").startswith(slug)
    assert naming.slugify("x" * 60) == "x" * 48
    assert naming.slugify("a" * 47 + " bcd") == "a" * 47


def test_slugify_is_stable_on_a_slug() -> None:
    slug = naming.slugify("Make the parser faster")
    assert naming.slugify(slug) == slug


def test_unique_branch_name_appends_a_counter_and_never_reuses() -> None:
    assert naming.unique_branch_name("fix", set()) == "baro/fix"
    assert naming.unique_branch_name("fix", {"baro/fix"}) == "baro/fix-2"
    assert naming.unique_branch_name("fix", {"baro/fix", "baro/fix-2", "main"}) == "baro/fix-3"
    # a directory clash counts as taken too
    assert naming.unique_branch_name("fix", {"baro/fix/old"}) == "baro/fix-2"
    with pytest.raises(ValueError):
        naming.unique_branch_name("fix", {"baro"})


def test_normalize_baro_branch_only_accepts_baro_branches() -> None:
    assert naming.normalize_baro_branch("refs/heads/baro/x") == "baro/x"
    assert naming.normalize_baro_branch("baro/x-2") == "baro/x-2"
    for bad in ("main", "feature/baro/x", "baro/", "refs/heads/main"):
        with pytest.raises(ValueError):
            naming.normalize_baro_branch(bad)


def test_ref_components_are_safe_and_distinct() -> None:
    assert naming.ref_component("S1") == "S1"
    odd = ["a b", "a/b", "a..b", "x.lock", "-lead", "a:b", "a~b"]
    components = [naming.ref_component(name) for name in odd]
    assert len(set(components)) == len(odd)
    for component in components:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", component)
        assert ".." not in component and not component.endswith(".lock")


def test_reserved_story_ids_cannot_collide_with_run_refs() -> None:
    run = "r1"
    own = {naming.base_ref(run), naming.integration_ref(run), naming.published_ref(run)}
    for reserved in sorted(naming.RESERVED_STORY_COMPONENTS):
        ref = naming.attempt_ref(run, reserved, 1)
        assert not any(ref.startswith(r + "/") for r in own)
        assert not ref.startswith(naming.run_prefix(run) + "integrated/")
    assert naming.attempt_ref(run, "S1", 2) == "refs/baro/r1/S1/2"
    assert naming.integrated_marker(run, "S1", 2) == "refs/baro/r1/integrated/S1/2"
