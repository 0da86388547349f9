"""`baro fetch RUN`: bring a cluster run's result into a local repository.

A run whose source was a URL or an uploaded bundle leaves its result in the object store
as a bundle of the run's refs. ``baro fetch`` unpacks it into a scratch bare repository
(which borrows the local repository's objects, because the bundle is thin: it leaves out
what the run's base already has) and then delivers from there exactly as the merger
delivers a local run: refs and objects only, the branch ``baro/<slug>`` (or ``-2``,
``-3``… when taken) created in one transaction, every attempt kept under
``refs/baro/<run>/``. The checkout, index, working tree and stash are not touched, and
fetching the same run again finds the branch it made.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import nats.js.errors
import typer

from baro_cli import validate
from baro_cli.app import app, cluster_settings, fail
from baro_cli.commands.cluster import (
    AsJson,
    NatsUrl,
    RunArg,
    find_run,
    on_cluster,
    run_id_arg,
)
from baro_cli.terminal import safe
from baro_cli.validate import UserError
from baro_merger import naming
from baro_merger.delivery import deliver
from baro_merger.errors import MergerError
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.gitutil import git
from baro_shared.settings import Settings


@dataclass
class Fetched:
    run_id: str
    repository: str
    branch: str | None
    base: str
    head: str
    commits: int
    files_changed: list[str]
    refs: list[str]
    already_fetched: bool
    state: str


@app.command()
def fetch(
    run_id: RunArg,
    repo: Annotated[
        Path, typer.Option("--repo", help="The repository to bring the result into.")
    ] = Path("."),
    nats_url: NatsUrl = None,
    as_json: AsJson = False,
) -> None:
    """Bring a delivered run's branch into a local repository (refs only; your checkout stays)."""
    settings = cluster_settings(nats_url)
    try:
        rid = run_id_arg(run_id)
        root, _ = validate.repository(repo)
        validate.refs_free(root, rid, new_branch=True)
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    got = on_cluster(settings, lambda bus: fetch_run(bus, settings, rid, root))
    if as_json:
        typer.echo(json.dumps(asdict(got)))
        return
    render(got)


def render(got: Fetched) -> None:
    out = safe(sys.stdout).write
    if got.branch is None:
        out(f"run {got.run_id} ({got.state}) delivered no branch")
    elif got.already_fetched:
        out(f"run {got.run_id} was already fetched into {got.repository} as {got.branch}")
    else:
        out(
            f"branch {got.branch} created in {got.repository} "
            f"({got.base[:10]}..{got.head[:10]}, {got.commits} commit(s), "
            f"{len(got.files_changed)} file(s) changed)"
        )
    out("\n")
    if got.refs:
        out(f"every attempt is kept under {naming.run_prefix(got.run_id)} ({len(got.refs)} refs)\n")
    out("your branch, index, working tree and stash were not touched\n")


async def fetch_run(bus: Bus, settings: Settings, run_id: str, root: Path) -> Fetched:
    rec = await find_run(bus, settings, run_id)
    delivered = _result_of(rec)
    assert delivered.result_bundle is not None
    with tempfile.TemporaryDirectory(prefix="baro-fetch-") as tmp:
        bundle = Path(tmp) / "result.bundle"
        try:
            await bus.get_file(delivered.result_bundle, bundle)
        except nats.js.errors.NotFoundError:
            raise UserError(
                f"the result of run {run_id} is no longer in the object store (results are "
                "kept for BARO_OBJECTS_MAX_AGE_S): run the goal again"
            ) from None
        await _require_commit(root, delivered.base, rec)
        scratch = await _unpack(Path(tmp) / "result.git", root, bundle, run_id, delivered.base)
        slug = delivered.branch.removeprefix(naming.BRANCH_PREFIX) if delivered.branch else run_id
        if rec.checkpoint is not None:  # a partial result: its marker came with the bundle
            slug = rec.request.slug or rec.request.goal
        try:
            result = await deliver(scratch, run_id, root, slug=slug, checkpoint=rec.checkpoint)
        except MergerError as exc:
            raise UserError(str(exc), 1) from None
    return Fetched(
        run_id=run_id,
        repository=str(root),
        branch=result.branch,
        base=result.base,
        head=result.head,
        commits=result.commits,
        files_changed=result.files_changed,
        refs=result.preserved_refs,
        already_fetched=result.already_delivered,
        state=rec.state,
    )


def _result_of(rec: s.RunRecord) -> s.RunDelivered:
    d = rec.delivered
    if d is None:
        if rec.state in s.TERMINAL_RUN_STATES:
            why = f": {rec.reason}" if rec.reason else ""
            raise UserError(f"run {rec.run_id} ended {rec.state} without a result{why}", 1)
        raise UserError(
            f"run {rec.run_id} is {rec.state}: nothing to fetch yet (baro watch {rec.run_id} "
            "waits for it)",
            1,
        )
    if d.result_bundle is None:
        if rec.request.repo.kind == "path":
            where = rec.request.repo.location
            branch = f" as {d.branch}" if d.branch else ""
            raise UserError(
                f"run {rec.run_id} was delivered straight into {where}{branch}: nothing to fetch",
                1,
            )
        raise UserError(f"run {rec.run_id} changed nothing: there is no branch to fetch", 1)
    return d


async def _require_commit(root: Path, commit: str, rec: s.RunRecord) -> None:
    found = await git("cat-file", "-e", f"{commit}^{{commit}}", cwd=root, check=False)
    if found.returncode != 0:
        source = rec.request.repo
        origin = "an uploaded copy of a repository" if source.kind == "bundle" else source.location
        raise UserError(
            f"{root} does not have the run's base commit {commit[:12]} (the run started from "
            f"{origin}): fetch that commit into it first (e.g. git fetch origin), then retry",
            1,
        )


async def _unpack(scratch: Path, root: Path, bundle: Path, run_id: str, base: str) -> Path:
    """A bare repository holding the run's refs, its objects borrowed from ``root``."""
    await git("init", "--quiet", "--bare", str(scratch))
    objects = (
        await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=root)
    ).out + "/objects"
    (scratch / "objects" / "info").mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(
        (scratch / "objects" / "info" / "alternates").write_text, objects + "\n"
    )
    prefix = naming.run_prefix(run_id)
    got = await git(
        "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(bundle),
        f"+{prefix}*:{prefix}*",
        cwd=scratch, check=False,
    )  # fmt: skip
    if got.returncode != 0:
        raise UserError(f"cannot read the result bundle of run {run_id}: {got.stderr.strip()}", 1)
    await git("update-ref", naming.base_ref(run_id), base, cwd=scratch)
    return scratch
