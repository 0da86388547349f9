"""The trust boundary's pure core: guards, link resolution, surfaces, policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baro_merger.admission import (
    GITLINK_MODE,
    SYMLINK_MODE,
    Entry,
    guard,
    human_size,
    link_escape,
    outside_surface,
    resolve_policy,
)
from baro_shared.repoconfig import SurfaceConfig, parse_size
from baro_shared.surfaces import is_git_like_path

FILE = "100644"
MIB = 1 << 20


def added(path: str, size: int = 10, mode: str = FILE, oid: str = "n", target: str | None = None) -> Entry:  # fmt: skip
    return Entry(path, "A", new_mode=mode, new_oid=oid, new_size=size, link_target=target)


def deleted(path: str, oid: str | None = None) -> Entry:
    return Entry(path, "D", old_mode=FILE, old_oid=oid or f"old-{path}", old_size=10)


def rules(entries: list[Entry], **kw: object) -> dict[str, str]:
    defaults: dict[str, object] = dict(
        surface=[], goal="improve things", tracked_at_base=10, links={}
    )
    defaults.update(kw)
    return {r.path: r.rule for r in guard(entries, **defaults)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path",
    [".git/config", ".GIT/hooks/post-checkout", "sub/.Git/config", "a/.git./x", "GIT~1/HEAD",
     ".g\u200cit/hooks/x", "deep/er/.gIt"],
)  # fmt: skip
def test_git_like_paths_are_refused(path: str) -> None:
    assert is_git_like_path(path)
    assert rules([added(path)]) == {path: "git_path"}


@pytest.mark.parametrize(
    "path", [".gitignore", ".github/workflows/ci.yml", "git/x", "src/.gitkeep"]
)
def test_ordinary_dot_files_are_not_git_paths(path: str) -> None:
    assert not is_git_like_path(path)
    assert rules([added(path)]) == {}


@pytest.mark.parametrize(
    ("path", "target", "why"),
    [
        ("passwd", "/etc/passwd", "is absolute"),
        ("out", "../../../../outside", "leaves the repository"),
        ("a/b/up", "../../../x", "leaves the repository"),
        ("hooks", ".git/hooks", "points into .git"),
        ("hooks2", "sub/../.GIT/hooks", "points into .git"),
        ("empty", "", "empty target"),
    ],
)
def test_links_that_leave_the_repository_are_refused(path: str, target: str, why: str) -> None:
    reason = link_escape(path, target, {path: target})
    assert reason is not None and why in reason
    assert rules([added(path, mode=SYMLINK_MODE, target=target)], links={path: target}) == {
        path: "symlink_escape"
    }


@pytest.mark.parametrize(
    ("path", "target"),
    [("docs/latest", "../versions/3"), ("a/b/c", "../../x/y"), ("here", "."), ("x", "a/./b")],
)
def test_links_inside_the_repository_are_fine(path: str, target: str) -> None:
    assert link_escape(path, target, {path: target}) is None


def test_links_are_followed_through_other_links() -> None:
    # "s" looks harmless and so does "t" read as text; together t climbs above the root
    links = {"s": ".", "t": "s/.."}
    assert link_escape("s", ".", links) is None
    assert link_escape("t", "s/..", links) == "leaves the repository"
    assert link_escape("u", "abs/x", {"u": "abs/x", "abs": "/etc"}) is not None
    loop = {"a": "b", "b": "a"}
    assert link_escape("a", "b", loop) == "goes through a loop of links"


def test_large_files_are_refused_unless_they_were_already_that_large() -> None:
    big = added("data.bin", size=200 * MIB)
    assert rules([big]) == {"data.bin": "too_large"}
    (refusal,) = guard([big], surface=[], goal="", tracked_at_base=1, links={})
    assert refusal.reason.startswith("200 MiB, above the 5 MiB limit for one file")
    grown = Entry("d.bin", "M", FILE, FILE, "o", "n", old_size=6 * MIB, new_size=7 * MIB)
    same = Entry("e.bin", "M", FILE, FILE, "o", "n", old_size=7 * MIB, new_size=7 * MIB)
    assert rules([grown, same]) == {"d.bin": "too_large"}
    roomy = SurfaceConfig(max_file_bytes=300 * MIB)
    assert rules([big], limits=roomy) == {}
    assert rules([added("lib", size=300 * MIB, mode=GITLINK_MODE)]) == {"lib": "gitlink"}


def test_gitlinks_a_story_adds_are_refused_a_moved_submodule_is_not() -> None:
    new = added("vendor/lib", mode=GITLINK_MODE, oid="0123456789abcdef")
    (refusal,) = guard([new], surface=[], goal="", tracked_at_base=1, links={})
    assert (refusal.path, refusal.rule) == ("vendor/lib", "gitlink")
    assert refusal.reason.startswith("a submodule entry (gitlink to 0123456789ab): a repository")
    replaced = Entry("tool", "T", FILE, GITLINK_MODE, "o", "n", old_size=10)
    assert rules([replaced]) == {"tool": "gitlink"}
    moved = Entry("sub", "M", GITLINK_MODE, GITLINK_MODE, "o", "n")
    assert rules([moved]) == {}
    assert rules([Entry("sub", "D", old_mode=GITLINK_MODE, old_oid="o")]) == {}


def test_mass_deletion_refuses_every_lost_deletion_but_not_moves() -> None:
    wipe = [deleted(f"f{i}.py") for i in range(6)]
    assert rules(wipe, tracked_at_base=10) == {f"f{i}.py": "mass_deletion" for i in range(6)}
    assert rules(wipe[:5], tracked_at_base=10) == {}  # half is allowed
    moved = [deleted(f"f{i}.py", oid=f"c{i}") for i in range(6)] + [
        added(f"src/f{i}.py", oid=f"c{i}") for i in range(6)
    ]
    assert rules(moved, tracked_at_base=10) == {}
    everything = SurfaceConfig(max_deleted_share=1.0)
    assert rules(wipe, tracked_at_base=6, limits=everything) == {}
    (one, *_) = guard(wipe, surface=[], goal="", tracked_at_base=10, links={})
    assert (
        one.reason
        == "the story deletes 6 of the 10 files tracked at its base (60%), more than the 50% allowed"
    )


def test_baro_toml_changes_only_when_asked_for() -> None:
    change = [Entry(".baro.toml", "M", FILE, FILE, "o", "n", 10, 20)]
    assert rules(change) == {".baro.toml": "baro_config"}
    assert rules(change, surface=["**"]) == {".baro.toml": "baro_config"}
    assert rules(change, surface=["*.toml"]) == {".baro.toml": "baro_config"}
    assert rules(change, surface=[".baro.toml"]) == {}
    assert rules(change, goal="add a verify command to .baro.toml") == {}
    assert rules([added("sub/.baro.toml")]) == {}  # only the root's is read


def test_one_refusal_per_path_the_first_rule_wins() -> None:
    link = added(".git/evil", mode=SYMLINK_MODE, target="/etc/passwd")
    assert rules([link], links={".git/evil": "/etc/passwd"}) == {".git/evil": "git_path"}


def test_surface_violations() -> None:
    paths = ["src/a.py", "README.md", "tests/test_a.py"]
    assert outside_surface(paths, []) == []
    assert outside_surface(paths, ["src/**", "tests/"]) == ["README.md"]
    assert outside_surface(paths, ["src/a.py"]) == ["README.md", "tests/test_a.py"]


def test_policy_flag_then_config_then_mode() -> None:
    assert resolve_policy(None, None, "parallel") == "strict"
    assert resolve_policy(None, None, "sequential") == "warn"
    assert resolve_policy(None, None, None) == "warn"
    assert resolve_policy(None, "warn", "parallel") == "warn"
    assert resolve_policy("strict", "warn", "focused") == "strict"


def test_sizes() -> None:
    assert parse_size("5 MiB") == 5 * MIB and parse_size("512k") == 512 * 1024
    assert parse_size("1048576") == MIB and parse_size("1.5 GB") == 3 << 29
    assert parse_size("lots") is None
    assert human_size(5 * MIB) == "5 MiB" and human_size(1536) == "1.5 KiB"
    assert human_size(12) == "12 bytes"


# --------------------------------------------------------------------------- property

NAMES = st.sampled_from(["a", "b", "c", "d"])
TARGET_PARTS = st.sampled_from(["a", "b", "c", "d", "..", "."])
LINK_PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
TARGETS = st.lists(TARGET_PARTS, min_size=1, max_size=5).map("/".join)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(links=st.dictionaries(LINK_PATHS, TARGETS, min_size=1, max_size=4))
def test_a_link_judged_inside_resolves_inside_on_a_real_file_system(
    links: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Soundness against the kernel: whenever the guard lets a link through, the operating
    system resolves it to a place inside the repository."""
    # a link cannot be a directory of another link's path: keep the tree realisable
    paths = sorted(links)
    links = {p: t for p, t in links.items() if not any(q.startswith(p + "/") for q in paths)}
    outer = tmp_path_factory.mktemp("outer")
    root = outer / "repo"
    root.mkdir()
    for path, target in links.items():
        where = root / path
        where.parent.mkdir(parents=True, exist_ok=True)
        if where.parent.resolve() != (root / Path(path).parent).absolute():
            return  # a parent directory is itself one of the links: not a tree git can hold
        os.symlink(target, where)
    for path, target in links.items():
        if link_escape(path, target, links) is None:
            resolved = Path(os.path.realpath(root / path))
            assert resolved == root.resolve() or root.resolve() in resolved.parents, (
                path,
                target,
                links,
            )
