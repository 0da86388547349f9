"""`baro submit GOAL`: hand a goal to a cluster and return with the run id.

The cluster cannot read this machine's disk, so the code travels with the run: ``--url``
names a git URL the cluster clones, or (the default) ``--repo`` uploads a bundle of the
local HEAD to the cluster's object store: after a first complete upload, only the
commits since an earlier upload of the same repository that is still there. Uncommitted changes are not part of it: a run
starts from a commit. The result comes back with ``baro fetch RUN`` (or is pushed, for a
URL with ``--publish push|pr``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from baro_cli import runflow, validate, watching
from baro_cli.app import (
    MODE_CHOICES,
    CheckpointOption,
    GoalArgument,
    GoalFileOption,
    MaxAttemptsOption,
    MaxStoriesOption,
    ModelOption,
    ModeOption,
    ParallelismOption,
    ReplanOption,
    RetryWindowOption,
    ReviewOption,
    RunTokenBudgetOption,
    StallTimeoutOption,
    StoryTimeoutOption,
    SurfaceOption,
    TokenBudgetOption,
    app,
    cluster_settings,
    fail,
)
from baro_cli.commands.cluster import (
    finish_watch,
    follow_detachable,
    open_cluster,
)
from baro_cli.validate import UserError
from baro_shared import objectcache, sources
from baro_shared import schemas as s
from baro_shared.bus import Bus, BusUnavailable, bus_problem
from baro_shared.gitutil import GitResult, git, git_sync
from baro_shared.runids import new_run_id
from baro_shared.settings import Settings


@app.command()
def submit(
    goal: GoalArgument = None,
    goal_file: GoalFileOption = None,
    repo: Annotated[
        Path | None,
        typer.Option(help="Upload this repository's HEAD (default: the current repository)."),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Or: a git URL the cluster clones instead of an upload.")
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="With --url: the branch or ref to start from.")
    ] = None,
    commit: Annotated[
        str | None, typer.Option(help="With --url: the commit to start from.")
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option(help="The cluster's NATS (default: BARO_NATS_URL, else this machine's baro)."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Agent CLI on the cluster: claude, codex, opencode, pi.")
    ] = None,
    model: ModelOption = None,
    mode: ModeOption = "auto",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --watch: accept the mode without the picker.")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow the run to its end instead of returning.")
    ] = False,
    max_stories: MaxStoriesOption = None,
    parallelism: ParallelismOption = None,
    token_budget: TokenBudgetOption = None,
    run_token_budget: RunTokenBudgetOption = None,
    story_timeout: StoryTimeoutOption = 1800.0,
    stall_timeout: StallTimeoutOption = 600.0,
    max_attempts: MaxAttemptsOption = s.Limits().max_attempts,
    retry_window: RetryWindowOption = s.Limits().retry_window_s,
    surface: SurfaceOption = None,
    publish: Annotated[
        str,
        typer.Option(help="local (default: fetch it with baro fetch), or with --url push or pr."),
    ] = "local",
    slug: Annotated[str | None, typer.Option(help="Name the result branch baro/<slug>.")] = None,
    script: Annotated[
        Path | None, typer.Option(help="Script for the scripted test/demo agent (JSON file).")
    ] = None,
    review: ReviewOption = None,
    replan: ReplanOption = None,
    checkpoint: CheckpointOption = None,
    clarify: Annotated[
        str,
        typer.Option(
            "--clarify",
            metavar="ask|skip",
            help="A goal that would need a guess raises questions. ask: the run waits for "
            "them to be answered (`baro answer RUN`, or the dashboard); skip (default): the "
            "smallest safe reading is taken and recorded.",
        ),
    ] = "skip",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Submit GOAL to a cluster; prints the run id and returns (unless --watch)."""
    settings = cluster_settings(nats_url)
    try:
        plan = SubmitPlan.build(
            validate.read_goal(goal, goal_file),
            repo=repo,
            url=url,
            ref=ref,
            commit=commit,
            backend=backend or settings.backend,
            model=model,
            mode=mode,
            confirm="picker"
            if (watch and mode == "auto" and not yes and _interactive())
            else "auto",
            limits=s.Limits(
                max_stories=max_stories,
                parallelism=parallelism,
                token_budget=token_budget,
                run_token_budget=run_token_budget or settings.run_token_budget,
                story_timeout_s=story_timeout,
                stall_timeout_s=stall_timeout,
                max_attempts=max_attempts,
                retry_window_s=retry_window,
            ),
            publish=publish,
            slug=slug,
            script=script,
            settings=settings,
            surface=surface,
            review=validate.on_off("--review", review),
            replan=validate.on_off("--replan", replan),
            checkpoint=checkpoint is not False,
            clarify=validate.clarify_choice(clarify),
        )
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    shown = watching.Shown(quiet=quiet or not watch, as_json=as_json, events=False)
    try:
        report = asyncio.run(_submit(plan, settings, shown, watch=watch))
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    except BusUnavailable as exc:
        raise fail(
            bus_problem(exc, "pass --nats-url with the cluster's NATS, or set BARO_NATS_URL")
        ) from None
    run_id = plan.request.run_id
    if watch:
        finish_watch(run_id, report, shown)
        return
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run_id": run_id,
                    "state": "submitted",
                    "nats_url": settings.nats_url,
                    "repo": {"kind": plan.request.repo.kind, "location": plan.shown_location},
                    "commit": plan.request.repo.commit,
                }
            )
        )
        return
    typer.echo(run_id)
    if not quiet:
        typer.echo(
            f"submitted to {settings.nats_url}: baro watch {run_id} follows it, "
            f"baro status {run_id} shows it",
            err=True,
        )


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


class SubmitPlan:
    """A checked request, plus the local repository to bundle (for --repo)."""

    def __init__(self, request: s.RunSubmitted, bundle_from: Path | None, notes: list[str]) -> None:
        self.request = request
        self.bundle_from = bundle_from
        self.notes = notes

    @property
    def shown_location(self) -> str:
        repo = self.request.repo
        return sources.redact_url(repo.location) if repo.kind == "url" else repo.location

    @classmethod
    def build(
        cls,
        goal: str,
        *,
        repo: Path | None,
        url: str | None,
        ref: str | None,
        commit: str | None,
        backend: str,
        model: str | None,
        mode: str,
        confirm: s.Confirm,
        limits: s.Limits,
        publish: str,
        slug: str | None,
        script: Path | None,
        settings: Settings,
        surface: str | None = None,
        review: bool | None = None,
        replan: bool | None = None,
        checkpoint: bool = True,
        clarify: s.ClarifyPolicy = "skip",
    ) -> SubmitPlan:
        text = validate.goal_text(goal)
        surface_policy = validate.surface_policy(surface)
        if mode not in MODE_CHOICES:
            raise UserError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_CHOICES)}")
        if publish not in ("local", "push", "pr"):
            raise UserError(f"unknown publish policy {publish!r}: choose local, push or pr")
        validate.backend(backend, settings, local=False)
        validate.model_name(model)
        run_id = new_run_id()
        notes: list[str] = []
        try:
            if url is not None:
                if repo is not None:
                    raise UserError("pass --repo (upload) or --url (clone), not both")
                source = s.RepoSource(
                    kind="url",
                    location=sources.check_git_url(url.strip()),
                    ref=sources.check_ref(ref.strip()) if ref else None,
                    commit=sources.check_commit(commit.strip()) if commit else None,
                )
                bundle_from = None
            else:
                if ref or commit:
                    raise UserError(
                        "--ref and --commit go with --url; --repo uploads the repository's HEAD"
                    )
                if publish != "local":
                    notes.append(
                        f"note: --publish {publish} pushes only a run the cluster cloned from "
                        "--url; this upload comes back with baro fetch, and nothing is pushed"
                    )
                root, head = validate.repository(repo or Path("."))
                source = s.RepoSource(
                    kind="bundle",
                    location=sources.snapshot_name(repository_key(root), head),
                    commit=head,
                )
                bundle_from = root
                if _has_uncommitted(root):
                    notes.append(
                        f"note: uncommitted changes in {root} are not part of the run "
                        f"(it starts from HEAD {head[:12]})"
                    )
        except sources.SourceProblem as exc:
            raise UserError(str(exc)) from None
        agent_script = validate.agent_script(script)
        request = s.RunSubmitted(
            run_id=run_id,
            goal=text,
            repo=source,
            mode_request=mode,  # type: ignore[arg-type]
            intake=settings.intake,
            backend=backend,
            model=model,
            limits=limits,
            confirm=confirm,
            publish=publish,  # type: ignore[arg-type]
            slug=slug,
            agent_script=agent_script,
            submitted_by=f"{os.environ.get('USER', 'user')}@cli",
            surface=surface_policy,  # type: ignore[arg-type]
            review=review,
            replan=replan,
            checkpoint=checkpoint,
            clarify=clarify,
        )
        return cls(validate.submission(request), bundle_from, notes)


def _has_uncommitted(root: Path) -> bool:
    res = git_sync("-C", str(root), "status", "--porcelain", "--untracked-files=no", check=False)
    return res.returncode == 0 and bool(res.out)


async def _submit(
    plan: SubmitPlan, settings: Settings, shown: watching.Shown, *, watch: bool
) -> runflow.RunReport | None:
    progress = shown.progress
    bus = await open_cluster(settings, "baro-submit")
    try:
        for note in plan.notes:
            typer.echo(note, err=True)
        if plan.bundle_from is not None:
            await upload_head(
                bus, plan.bundle_from, plan.request.repo, uploads=settings.state_dir / "uploads"
            )
        progress.line(
            f"run {plan.request.run_id} submitted: {plan.request.goal.splitlines()[0][:100]}"
        )
        await runflow.submit(bus, plan.request)
        if not watch:
            return None
        picker = None
        if plan.request.confirm == "picker":
            from baro_cli.picker import pick_mode

            picker = pick_mode
        return await follow_detachable(bus, plan.request, shown, picker)
    finally:
        await bus.close()


async def upload_head(
    bus: Bus, root: Path, source: s.RepoSource, *, uploads: Path | None = None
) -> None:
    """Bundle the repository's history up to HEAD (``source.commit``) into
    ``source.location``.

    A snapshot name (``sources.snapshot_name``) already in the object store is not
    uploaded again. Otherwise the bundle holds only the commits since the latest earlier
    upload recorded in ``uploads`` whose chain of snapshots is still complete in the store
    (a merger or runner that lacks those fetches them from there, once); the first upload
    of a repository, or one whose earlier uploads expired, holds the whole history.
    """
    snapshot = sources.snapshot_parts(source.location)
    if snapshot is not None and await bus.has_object(source.location):
        _remember(uploads, *snapshot)
        return
    against = await _earlier_upload(bus, root, snapshot, uploads) if snapshot else None
    with tempfile.TemporaryDirectory(prefix="baro-submit-") as tmp:
        bundle = Path(tmp) / "source.bundle"
        made = await _bundle(root, bundle, against)
        if made.returncode != 0 and against is not None:
            # e.g. HEAD is already part of that upload's history: send the whole history
            against = None
            made = await _bundle(root, bundle, None)
        if made.returncode != 0:
            raise UserError(f"cannot bundle {root}: {made.stderr.strip() or 'git bundle failed'}")
        description = objectcache.snapshot_description(against) if snapshot else None
        await bus.put_file(source.location, bundle, description=description)
    if snapshot is not None:
        _remember(uploads, *snapshot)


async def _bundle(root: Path, out: Path, against: str | None) -> GitResult:
    since = [f"^{against}"] if against else []
    return await git("bundle", "create", "--quiet", str(out), "HEAD", *since, cwd=root, check=False)


def repository_key(root: Path) -> str:
    """What names a repository's uploads in the object store: its root commit (the
    smallest id, when its history has several), the same on every clone of it."""
    roots = git_sync("-C", str(root), "rev-list", "--max-parents=0", "HEAD", timeout=300)
    return min(roots.out.split())


UPLOADS_KEPT = 16


def _remember(uploads: Path | None, key: str, commit: str) -> None:
    if uploads is None:
        return
    record = uploads / key
    earlier = [c for c in _recorded(uploads, key) if c != commit]
    with contextlib.suppress(OSError):
        uploads.mkdir(parents=True, exist_ok=True)
        record.write_text("".join(f"{c}\n" for c in [*earlier, commit][-UPLOADS_KEPT:]))


def _recorded(uploads: Path | None, key: str) -> list[str]:
    if uploads is None:
        return []
    try:
        lines = (uploads / key).read_text().split()
    except OSError:
        return []
    return [line for line in lines if len(line) in (40, 64)]


async def _earlier_upload(
    bus: Bus, root: Path, snapshot: tuple[str, str], uploads: Path | None
) -> str | None:
    """The latest recorded upload of this repository that is an ancestor here and whose
    chain is complete in the object store."""
    key, head = snapshot
    for commit in reversed(_recorded(uploads, key)):
        if commit == head:
            continue
        here = await git("cat-file", "-e", f"{commit}^{{commit}}", cwd=root, check=False)
        if here.returncode == 0 and await _chain_complete(bus, key, commit):
            return commit
    return None


async def _chain_complete(bus: Bus, key: str, commit: str) -> bool:
    """Is the snapshot of ``commit`` in the store with every snapshot it builds on, within
    the chain length a merger or runner follows?"""
    against: str | None = commit
    for _ in range(objectcache.MAX_CHAIN):
        assert against is not None
        description = await bus.object_description(sources.snapshot_name(key, against))
        if description is None:
            return False
        against = objectcache.parse_against(description)
        if against is None:
            return True
    return False
