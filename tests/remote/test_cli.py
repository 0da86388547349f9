"""The cluster CLI against a running stack: submit (upload or URL), runs, status, watch,
fetch; and what each says when the input is wrong."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from baro_cli.commands.submit import repository_key
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from baro_shared.sources import snapshot_name
from tests.conftest import make_repo, run_git, snapshot
from tests.remote.conftest import FILES, FIX, GOAL, baro, branches, remote_repo

pytestmark = pytest.mark.slow


def script_file(tmp_path: Path) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(FIX))
    return str(path)


async def test_submit_uploads_head_and_fetch_brings_the_result_back(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    head = run_git(repo, "rev-parse", "HEAD")
    before = snapshot(repo)
    sent = await baro(
        stack, "submit", GOAL, "--repo", str(repo), "--backend", "scripted",
        "--script", script_file(tmp_path),
    )  # fmt: skip
    assert sent.code == 0, sent.err
    run_id = sent.out.strip()
    assert run_id and "\n" not in run_id, "submit prints the run id alone on stdout"
    assert "uncommitted changes" in sent.err and head[:12] in sent.err
    assert f"baro watch {run_id}" in sent.err

    watched = await baro(stack, "watch", run_id, "--json")
    assert watched.code == 0, watched.err
    report = json.loads(watched.out)
    assert report["status"] == "delivered" and report["mode"] == "focused"
    assert report["base"] == head

    status = await baro(stack, "status", run_id, "--json")
    assert status.code == 0, status.err
    view = json.loads(status.out)
    assert view["state"] == "delivered"
    assert view["repo"] == {
        "kind": "bundle",
        "location": snapshot_name(repository_key(repo), head),
        "commit": head,
        "ref": None,
    }
    assert view["delivered"]["published"] == "object_store"
    text = await baro(stack, "status", run_id)
    assert f"baro fetch {run_id}" in text.out and "decided by offline" in text.out

    listed = await baro(stack, "runs", "--json")
    assert run_id in [r["run_id"] for r in json.loads(listed.out)["runs"]]
    table = await baro(stack, "runs")
    assert run_id in table.out and "delivered" in table.out

    assert snapshot(repo) == before, "submit read the repository only"
    fetched = await baro(stack, "fetch", run_id, "--repo", str(repo), "--json")
    assert fetched.code == 0, fetched.err
    got = json.loads(fetched.out)
    assert got["branch"] in branches(repo) and got["files_changed"] == ["app.py"]
    assert snapshot(repo) == before, "fetch touched the checkout, index or stash"
    assert run_git(repo, "show", f"{got['branch']}:app.py") == "def greet():\n    return 'hello'"


async def test_submit_by_url_with_watch_follows_to_the_end(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, head = remote_repo(tmp_path)
    sent = await baro(
        stack, "submit", GOAL, "--url", f"file://{bare}", "--backend", "scripted",
        "--script", script_file(tmp_path), "--watch",
    )  # fmt: skip
    assert sent.code == 0, sent.err
    assert "run " in sent.out and ": delivered" in sent.out
    assert "agent finished: success" in sent.err, "progress lines while watching"
    assert head[:10] in sent.out


async def test_status_of_a_run_just_submitted_comes_from_its_event(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, _ = remote_repo(tmp_path)
    sent = await baro(
        stack, "submit", "add a CHANGES.md", "--url", str(bare), "--backend", "scripted",
        "--json",
    )  # fmt: skip
    assert sent.code == 0, sent.err
    run_id = json.loads(sent.out)["run_id"]
    status = await baro(stack, "status", run_id, "--json")
    assert status.code == 0, status.err
    assert json.loads(status.out)["run_id"] == run_id


async def _request_of(bus: Bus, run_id: str) -> s.RunSubmitted:
    """The run as submitted, once the conductor has its record."""
    for _ in range(300):
        got = await bus.get_record(run_id)
        if got is not None:
            return got[0].request
        await asyncio.sleep(0.1)
    raise AssertionError(f"no record of {run_id}")


async def test_submit_carries_the_review_replan_checkpoint_and_clarify_choices(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, _ = remote_repo(tmp_path)
    given = ("--review", "on", "--replan", "off", "--no-checkpoint", "--clarify", "ask")
    sent = await baro(
        stack, "submit", GOAL, "--url", str(bare), "--backend", "scripted", *given, "--json"
    )
    assert sent.code == 0, sent.err
    request = await _request_of(bus, json.loads(sent.out)["run_id"])
    assert (request.review, request.replan, request.checkpoint, request.clarify) == (
        True,
        False,
        False,
        "ask",
    )
    defaults = await baro(stack, "submit", GOAL, "--url", str(bare), "--backend", "scripted")
    request = await _request_of(bus, defaults.out.strip())
    assert (request.review, request.replan, request.checkpoint, request.clarify) == (
        None,
        None,
        True,
        "skip",
    )


async def test_cluster_commands_say_what_is_wrong_in_one_line(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)

    async def refused(*args: str, code: int = 2) -> str:
        got = await baro(stack, *args, cwd=repo)
        assert got.code == code, (args, got.code, got.out, got.err)
        assert "Traceback" not in got.err and got.err.count("\n") == 1, got.err
        return got.err

    assert "password" in await refused("submit", GOAL, "--url", "https://me:pw@example.com/a.git")
    assert "not a git URL" in await refused("submit", GOAL, "--url", "ext::sh")
    assert "not both" in await refused(
        "submit", GOAL, "--url", "file:///x.git", "--repo", str(repo)
    )
    assert "--ref and --commit go with --url" in await refused("submit", GOAL, "--ref", "main")
    assert "not a commit id" in await refused(
        "submit", GOAL, "--url", "file:///x.git", "--commit", "xyz"
    )
    assert "is empty" in await refused("submit", "  ")
    assert "not a git repository" in await refused(
        "submit", GOAL, "--repo", str(tmp_path), "--backend", "scripted"
    )
    assert "unknown backend" in await refused("submit", GOAL, "--backend", "gpt")
    assert "choose on or off" in await refused("submit", GOAL, "--review", "maybe")
    assert "choose ask or skip" in await refused("submit", GOAL, "--clarify", "later")
    assert "not a run id" in await refused("status", "a.b")
    assert "not a run id" in await refused("watch", "runs.>")
    assert "no run 'nope'" in await refused("status", "nope")
    assert "no run 'nope'" in await refused("fetch", "nope")
    assert "unknown state" in await refused("runs", "--state", "sleeping")


async def test_fetch_needs_the_base_commit_and_a_finished_run(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, _ = remote_repo(tmp_path)
    sent = await baro(
        stack, "submit", GOAL, "--url", str(bare), "--backend", "scripted",
        "--script", script_file(tmp_path), "--watch", "--quiet",
    )  # fmt: skip
    assert sent.code == 0, sent.err
    run_id = sent.out.split()[1].rstrip(":")
    stranger = make_repo(tmp_path / "stranger", {"other.txt": "unrelated\n"})
    got = await baro(stack, "fetch", run_id, "--repo", str(stranger))
    assert got.code == 1
    assert "does not have the run's base commit" in got.err and "git fetch" in got.err
    assert branches(stranger) == ["main"]


async def test_commands_without_baro_on_that_nats(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    settings = Settings(
        nats_url=nats_server.url, cache_dir=tmp_path / "c", state_dir=tmp_path / "s"
    )
    got = await baro(settings, "runs")
    assert got.code == 2 and "holds no baro runs" in got.err
    nowhere = settings.model_copy(update={"nats_url": "nats://127.0.0.1:1"})
    got = await baro(nowhere, "status", "some-run")
    assert got.code == 2 and "cannot reach NATS" in got.err and "Traceback" not in got.err
