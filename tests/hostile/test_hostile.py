"""Hostile agents: one scripted story per attack on the trust boundary.

Each test runs the whole stack (real nats-server, real git, the scripted agent as a
subprocess) and checks three things: the attack does not reach the delivered branch or
the machine, the run names it, and the user's checkout is byte-identical (``run_to_end``
compares a snapshot of the branch, index, working tree and stash before and after).
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from baro_cli import runflow
from baro_cli.commands.cluster import render_detail
from baro_intake import api_views
from baro_merger.prbody import pr_body
from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import request_for, run_to_end
from tests.merger_e2e.conftest import refs_of, show, tree

FILES = {
    "README.md": "# app\n",
    "src/one.py": "ONE = 1\n",
    "src/two.py": "TWO = 2\n",
    "src/three.py": "THREE = 3\n",
    "docs/guide.md": "read me\n",
    "check.py": "print('checked')\n",
}
SECRETS = {
    "BARO_API_TOKEN": "hostile-test-baro-api-token",
    "BARO_NATS_PASSWORD": "hostile-test-nats-password",
    "GH_TOKEN": "ghp_hostiletesttoken000000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-hostile-test-key-0000000000000000",
}


def plan(*stories: tuple[str, list[str]], chain: bool = False) -> list[s.Story]:
    out = []
    for i, (story_id, surface) in enumerate(stories):
        after = [stories[i - 1][0]] if chain and i else []
        out.append(
            s.Story(
                id=story_id, title=f"work on {story_id}", write_surface=surface, depends_on=after
            )
        )
    return out


def by_rule(report: runflow.RunReport) -> dict[str, str]:
    return {r["path"]: r["rule"] for r in report.refused}


async def record_of(bus: Bus, run_id: str) -> s.RunRecord:
    got = await bus.get_record(run_id)
    assert got is not None
    return got[0]


async def test_wiping_the_tree_is_refused(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    wipe = "git ls-files -z | xargs -0 rm -f && rm -rf src docs"
    script = {
        "default": {"steps": [{"run": wipe}, {"write": "src/three.py", "content": "THREE = 33\n"}]}
    }
    request = request_for(
        repo,
        "make three bigger",
        script,
        mode_request="focused",
        plan=plan(("S1", ["src/three.py"])),
    )
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert set(by_rule(report).values()) == {"mass_deletion"}
    assert sorted(by_rule(report)) == sorted(set(FILES) - {"src/three.py"})
    assert report.branch is not None
    assert tree(repo, report.branch) == sorted(FILES)
    assert show(repo, report.branch, "src/three.py") == "THREE = 33\n"
    kept = f"refs/baro/{request.run_id}/S1/1"
    assert tree(repo, kept) == ["src/three.py"], "the attempt itself is kept, whole"


async def test_neighbours_files_stay_out_and_each_story_reruns_once(
    bus: Bus, tmp_path: Path
) -> None:
    """Two stories side by side both write the same file outside their surfaces."""
    repo = make_repo(tmp_path / "user", FILES, dirty=True)

    def trespass(own: str, value: str) -> list[dict[str, object]]:
        return [
            {"write": own, "content": f"{value}\n"},
            {"write": "shared.txt", "content": f"{own} was here\n"},
            {"append": "README.md", "content": f"{own} was here\n"},
        ]

    script = {
        "stories": [
            {"match": {"id": "S1"}, "attempts": [1], "steps": trespass("src/one.py", "ONE = 11")},
            {"match": {"id": "S2"}, "attempts": [1], "steps": trespass("src/two.py", "TWO = 22")},
            {"match": {"id": "S1"}, "steps": [{"write": "src/one.py", "content": "ONE = 11\n"}]},
            {"match": {"id": "S2"}, "steps": [{"write": "src/two.py", "content": "TWO = 22\n"}]},
        ]
    }
    stories = plan(("S1", ["src/one.py"]), ("S2", ["src/two.py"]))
    request = request_for(repo, "change one and two", script, mode_request="parallel", plan=stories)
    lines = io.StringIO()
    report = await run_to_end(bus, request, progress=runflow.Progress(lines))

    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert tree(repo, report.branch) == sorted(FILES)
    shown = lines.getvalue()
    for story in ("S1", "S2"):
        assert (
            f"{story} rejected (surface policy strict): outside its write surface, "
            "not integrated: README.md, shared.txt"
        ) in shown
    assert show(repo, report.branch, "README.md") == FILES["README.md"]
    assert report.files_changed == ["src/one.py", "src/two.py"]
    violations = {
        (v["story"], v["attempt"], v["path"], v["integrated"]) for v in report.surface_violations
    }
    assert violations == {
        (story, 1, path, False) for story in ("S1", "S2") for path in ("README.md", "shared.txt")
    }
    for story in ("S1", "S2"):
        assert show(repo, f"refs/baro/{request.run_id}/{story}/1", "shared.txt") is not None

    record = await record_of(bus, request.run_id)
    assert {st.story.id: st.rejections for st in record.stories} == {"S1": 1, "S2": 1}
    # every place a user looks names it: baro status (text and API) and the pull request
    detail = api_views.detail(record)
    assert {st.id: st.surface_violations for st in detail.stories} == {
        "S1": ["README.md", "shared.txt"],
        "S2": ["README.md", "shared.txt"],
    }
    status = _render(detail)
    assert (
        "S1 changed files outside its write surface (left out, policy strict): README.md, shared.txt"
        in status
    )
    body = pr_body(
        record, commits=2, files_changed=[], dropped=[], verify=None, verify_command=None, now=0
    )
    assert (
        "- S2: changed files outside its write surface (left out, policy strict): `README.md`, `shared.txt`"
        in body
    )


async def test_a_story_that_keeps_trespassing_fails_with_the_list(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    script = {
        "stories": [
            {
                "match": {"id": "S1"},
                "steps": [
                    {"write": "src/one.py", "content": "ONE = 11\n"},
                    {"write": "src/two.py", "content": "TWO = 'mine'\n"},
                ],
            },
            {"match": {"id": "S2"}, "steps": [{"write": "src/two.py", "content": "TWO = 22\n"}]},
        ]
    }
    stories = plan(("S1", ["src/one.py"]), ("S2", ["src/two.py"]))
    request = request_for(repo, "change one and two", script, mode_request="parallel", plan=stories)
    report = await run_to_end(bus, request)

    assert report.status == "needs_attention"
    assert runflow.exit_code(report) != 0
    assert report.reason is not None
    assert "S1 failed: changed files outside its write surface again (src/two.py)" in report.reason
    assert report.branch is not None and show(repo, report.branch, "src/two.py") == "TWO = 22\n"
    assert show(repo, report.branch, "src/one.py") == FILES["src/one.py"]
    assert [v["attempt"] for v in report.surface_violations if v["story"] == "S1"] == [1, 2]


async def test_links_out_of_the_repository_are_refused(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    script = {
        "default": {
            "steps": [
                {"run": "ln -s /etc/passwd passwd && ln -s ../../../../outside escape"},
                {"run": "mkdir -p docs/v1 && ln -s ../guide.md docs/v1/guide.md"},
                {"write": "src/one.py", "content": "ONE = 11\n"},
            ]
        }
    }
    request = request_for(repo, "change one", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert by_rule(report) == {"passwd": "symlink_escape", "escape": "symlink_escape"}
    assert report.branch is not None
    delivered = tree(repo, report.branch)
    assert "passwd" not in delivered and "escape" not in delivered
    assert "docs/v1/guide.md" in delivered, "a link inside the repository is fine"
    reasons = {r["path"]: r["reason"] for r in report.refused}
    assert "/etc/passwd" in reasons["passwd"] and "leaves the repository" in reasons["escape"]
    summary = io.StringIO()
    runflow.render_summary(report, summary)
    assert "refused (S1): passwd — symlink_escape: symbolic link to '/etc/passwd' is absolute" in (
        summary.getvalue()
    )
    assert json.loads(json.dumps(report.as_json()))["refused"][0]["story"] == "S1"


HUGE = "truncate -s 200M dataset.bin"  # sparse: 200 MB to git, almost nothing on this disk
COMMIT = "git add -A && git -c user.name=a -c user.email=a@a commit -qm"


@pytest.mark.parametrize(
    "steps",
    [
        [{"run": HUGE}, {"write": "src/one.py", "content": "ONE = 11\n"}],
        # committed by the agent, then removed: it is in the story's history only
        [
            {"run": f"{HUGE} && {COMMIT} data"},
            {"run": f"git rm -q dataset.bin && {COMMIT} 'no data'"},
            {"write": "src/one.py", "content": "ONE = 11\n"},
        ],
    ],
    ids=["left-uncommitted", "committed-then-removed"],
)
async def test_a_huge_file_is_never_bundled_nor_delivered(
    bus: Bus, tmp_path: Path, steps: list[dict[str, str]]
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    git_dir_before = _disk_usage(repo / ".git")
    request = request_for(repo, "change one", {"default": {"steps": steps}}, mode_request="focused")
    lines = io.StringIO()
    report = await run_to_end(bus, request, timeout=180, progress=runflow.Progress(lines))

    assert report.status == "delivered", report.reason
    assert by_rule(report) == {"dataset.bin": "too_large"}
    assert report.refused[0]["reason"] == (
        "200 MiB, above the 5 MiB limit for one file: left out of the story's result before "
        "it was bundled"
    )
    assert "S1 left out of its result: refused dataset.bin: too_large, 200 MiB" in lines.getvalue()
    record = await record_of(bus, request.run_id)
    assert [r.rule for r in record.stories[0].refused] == ["too_large"], "shown by baro status"
    # the runner bundled the story without it: the object store holds a small bundle
    result = record.stories[0].result
    assert result is not None and result.bundle is not None
    bundle = tmp_path / "result.bundle"
    await bus.get_file(result.bundle, bundle)
    assert bundle.stat().st_size < 1 << 20
    assert report.branch is not None and "dataset.bin" not in tree(repo, report.branch)
    kept = f"refs/baro/{request.run_id}/S1/1"
    assert show(repo, kept, "src/one.py") == "ONE = 11\n", "the attempt is kept, without it"
    assert _disk_usage(repo / ".git") - git_dir_before < 1 << 20
    leftovers = [p for p in tmp_path.rglob("dataset.bin")]
    assert leftovers == [], "the agent's workspace is gone"


async def test_a_repository_made_inside_the_workspace_is_refused(bus: Bus, tmp_path: Path) -> None:
    """The agent clones (here: makes) a repository inside its workspace: `git add -A`
    records it as a gitlink, a commit pointer without its files. It is refused by name."""
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    nested = (
        "git init -q vendor/lib && echo 'x = 1' > vendor/lib/lib.py && "
        "git -C vendor/lib add -A && "
        "git -C vendor/lib -c user.name=a -c user.email=a@a commit -qm lib"
    )
    script = {
        "default": {"steps": [{"run": nested}, {"write": "src/one.py", "content": "ONE = 11\n"}]}
    }
    request = request_for(repo, "change one", script, mode_request="focused")
    lines = io.StringIO()
    report = await run_to_end(bus, request, progress=runflow.Progress(lines))

    assert report.status == "delivered", report.reason
    assert by_rule(report) == {"vendor/lib": "gitlink"}
    assert report.refused[0]["reason"].startswith("a submodule entry (gitlink to ")
    assert "S1 integrated (refused vendor/lib: gitlink, a submodule entry" in lines.getvalue()
    assert report.branch is not None
    delivered = tree(repo, report.branch)
    assert "vendor/lib" not in delivered and not any(p.startswith("vendor/") for p in delivered)
    assert show(repo, report.branch, "src/one.py") == "ONE = 11\n"
    assert "160000" not in run_git(repo, "ls-tree", "-r", report.branch)


async def test_a_run_whose_every_change_was_left_out_is_not_a_success(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    script = {
        "default": {
            "steps": [
                {"write": "prd.json", "content": '{"passes": true}\n'},
                {"run": "ln -s /etc/passwd passwd"},
            ]
        }
    }
    request = request_for(repo, "change one", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "needs_attention"
    assert runflow.exit_code(report) == runflow.EXIT_ATTENTION
    assert report.branch is None
    kept = f"refs/baro/{request.run_id}/S1/1"
    assert report.reason == (
        "nothing was delivered: every change was left out; S1 delivered nothing: "
        "passwd (symlink_escape: symbolic link to '/etc/passwd' is absolute: it points "
        f"outside the repository), prd.json (artifact); kept at {kept}"
    )
    assert show(repo, kept, "prd.json") == '{"passes": true}\n'


async def test_a_baro_toml_written_by_an_agent_runs_nothing(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S1 writes a .baro.toml whose setup and verify would leak the environment and copy an
    untracked file of the user's; S2 runs after it. Nothing of it runs, nothing is copied,
    and the file itself is refused."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    leak = tmp_path / "leak"
    leak.mkdir()
    base_toml = '[verify]\ncommand = "python3 check.py"\n'
    repo = make_repo(tmp_path / "user", {**FILES, ".baro.toml": base_toml}, dirty=True)
    evil_toml = (
        "[setup]\n"
        f'command = "env > {leak}/setup-env"\n'
        'copy = ["scratch.txt"]\n'  # the user's untracked notes (make_repo dirty=True)
        "[verify]\n"
        f'command = "env > {leak}/verify-env"\n'
    )
    script = {
        "stories": [
            {
                "match": {"id": "S1"},
                "steps": [
                    {"write": ".baro.toml", "content": evil_toml},
                    {"write": "src/one.py", "content": "ONE = 11\n"},
                ],
            },
            {
                "match": {"id": "S2"},
                "steps": [
                    {"run": "ls -a > seen.txt"},
                    {"write": "src/two.py", "content": "TWO = 22\n"},
                ],
            },
        ]
    }
    stories = plan(("S1", []), ("S2", []), chain=True)
    request = request_for(
        repo, "change one, then two", script, mode_request="sequential", plan=stories
    )
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert by_rule(report) == {".baro.toml": "baro_config"}
    assert report.branch is not None
    assert show(repo, report.branch, ".baro.toml") == base_toml
    assert "scratch.txt" not in (show(repo, report.branch, "seen.txt") or "")
    assert "scratch.txt" not in tree(repo, report.branch)
    assert list(leak.iterdir()) == [], "a command the agent wrote ran"


async def test_configuration_comes_from_the_base_even_when_the_goal_asks_to_change_it(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked for, a new .baro.toml is delivered; this run still uses the base's (its
    verify runs the agent's code without baro's or the publishing credentials)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    leak = tmp_path / "leak"
    leak.mkdir()
    base_toml = '[verify]\ncommand = "python3 check.py"\n'
    repo = make_repo(tmp_path / "user", {**FILES, ".baro.toml": base_toml}, dirty=True)
    new_toml = (
        f'[setup]\ncommand = "env > {leak}/setup-env"\ncopy = ["scratch.txt"]\n'
        f'[verify]\ncommand = "env > {leak}/verify-env"\n'
    )
    dump_env = f"import os\nopen({str(leak / 'check-env')!r}, 'w').write(repr(dict(os.environ)))\n"
    script = {
        "stories": [
            {
                "match": {"id": "S1"},
                "steps": [
                    {"write": ".baro.toml", "content": new_toml},
                    {"write": "check.py", "content": dump_env},
                ],
            },
            {"match": {"id": "S2"}, "steps": [{"write": "src/two.py", "content": "TWO = 22\n"}]},
        ]
    }
    stories = plan(("S1", []), ("S2", []), chain=True)
    request = request_for(
        repo, "rewrite .baro.toml and check.py, then change two", script,
        mode_request="sequential", plan=stories,
    )  # fmt: skip
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert report.refused == []
    assert report.branch is not None and show(repo, report.branch, ".baro.toml") == new_toml
    assert "scratch.txt" not in tree(repo, report.branch)
    assert sorted(p.name for p in leak.iterdir()) == ["check-env"], "only the base's verify ran"
    seen = (leak / "check-env").read_text()
    assert not any(value in seen for value in SECRETS.values())
    assert "'CI': '1'" in seen


async def test_writing_under_git_like_directories_never_reaches_the_branch(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    hook = "#!/bin/sh\ntouch /tmp/baro-hostile-hook-ran\n"
    hfs_git = ".g\u200cit"  # what HFS+ takes for .git; git itself accepts the name
    script = {
        "stories": [
            {
                "match": {"id": "S1"},
                "steps": [
                    {"write": f"{hfs_git}/hooks/post-checkout", "content": hook},
                    {"write": f"sub/{hfs_git}/config", "content": "[core]\n\thooksPath = /tmp\n"},
                    {"write": "src/one.py", "content": "ONE = 11\n"},
                ],
            },
            {
                "match": {"id": "S2"},
                "steps": [
                    {"write": ".GIT/hooks/post-checkout", "content": hook},
                    {"write": "src/two.py", "content": "TWO = 22\n"},
                ],
            },
        ]
    }
    # the surfaces allow what else they write: the guard refuses whatever a surface says
    stories = plan(("S1", ["src/**", "sub/**"]), ("S2", ["src/two.py"]), chain=True)
    request = request_for(
        repo, "change one and two", script, mode_request="sequential", plan=stories
    )
    report = await run_to_end(bus, request)

    # the merger refuses what git records (the HFS+ form); git itself refuses to record
    # .GIT, so the runner leaves it out of S2's commit and keeps the rest of S2's change
    assert by_rule(report) == {
        f"{hfs_git}/hooks/post-checkout": "git_path",
        f"sub/{hfs_git}/config": "git_path",
        ".GIT/hooks/post-checkout": "git_path",
    }
    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert tree(repo, report.branch) == sorted(FILES)
    assert show(repo, report.branch, "src/one.py") == "ONE = 11\n"
    assert show(repo, report.branch, "src/two.py") == "TWO = 22\n"
    summary = io.StringIO()
    runflow.render_summary(report, summary)
    assert "refused (S2): .GIT/hooks/post-checkout — git_path: " in summary.getvalue()
    record = await record_of(bus, request.run_id)
    assert "  S2 refused .GIT/hooks/post-checkout: git_path, " in _render(api_views.detail(record))
    body = pr_body(
        record, commits=2, files_changed=[], dropped=[], verify=None, verify_command=None, now=0
    )
    assert "- S2: `.GIT/hooks/post-checkout` refused (git_path: " in body
    for ref in refs_of(repo, f"refs/baro/{request.run_id}/"):
        assert ".GIT/" not in "\n".join(tree(repo, ref))
    assert not Path("/tmp/baro-hostile-hook-ran").exists()


def _render(detail: object) -> str:
    out = io.StringIO()
    render_detail(detail, out)  # type: ignore[arg-type]
    return out.getvalue()


def _disk_usage(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


async def test_a_forged_git_object_in_the_story_s_history_never_reaches_the_branch(
    bus: Bus, tmp_path: Path
) -> None:
    """The agent commits, with git's plumbing, a commit object git itself would never write
    (no identity on its author or committer line). The merger indexes the story's bundle
    strictly, so the forged object is refused before anything is read from it."""
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    forge = (
        "git add -A && T=$(git write-tree) && P=$(git rev-parse HEAD) && "
        "C=$(printf 'tree %s\\nparent %s\\nauthor nobody\\ncommitter nobody\\n\\nforged\\n' "
        "$T $P | git hash-object -t commit --literally -w --stdin) && git update-ref HEAD $C"
    )
    script = {
        "default": {"steps": [{"write": "src/one.py", "content": "ONE = 11\n"}, {"run": forge}]}
    }
    request = request_for(repo, "change one", script, mode_request="focused")
    report = await run_to_end(bus, request, timeout=180)

    assert report.status != "delivered"
    assert report.branch is None
    record = await record_of(bus, request.run_id)
    story = record.stories[0]
    assert story.status == "failed", story.reason
    assert "cannot import" in (story.reason or ""), story.reason
    assert not any(
        "forged" in run_git(repo, "log", "--format=%s", "-1", ref) for ref in refs_of(repo, "refs/")
    ), "no ref of the user's repository holds the forged commit"
