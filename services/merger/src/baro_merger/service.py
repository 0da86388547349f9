"""The merger's bus handler: prepare, integrate, archive, deliver.

Each command is idempotent on the git side (refs mark what was done), so a redelivered
command finds its work done and publishes the same event again (deduplicated by its
Nats-Msg-Id). Commands of one run are handled one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
from prometheus_client import Counter, Histogram

from baro_merger import delivery as local_delivery
from baro_merger.admission import Refused
from baro_merger.config import read_baro_config
from baro_merger.delivery import deliver, mark_checkpoint, preserve_refs
from baro_merger.errors import ConfigError, DeliveryError, MergerError, NotPrepared, SourceError
from baro_merger.integration import (
    Conflict,
    Integrated,
    OpenRun,
    Rejected,
    import_story_bundle,
    integration_head,
    integration_repo_path,
    open_run,
    prepare_run,
    run_base,
)
from baro_merger.naming import checkpoint_slug, slugify
from baro_merger.notify import notify
from baro_merger.prbody import pr_body, pr_title
from baro_merger.publish import Publication, PublishingTools, publish
from baro_merger.remote import RunResult, bundle_result, pushed_branch_name, stage_push
from baro_merger.verify import run_gate
from baro_shared import checks, objectcache, retention
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.backends import SandboxRequired, agent_fence
from baro_shared.bus import ACK, Bus, Delivery, Outcome
from baro_shared.checks import Wrap
from baro_shared.gitutil import GitError
from baro_shared.metrics import FAST_SECONDS_BUCKETS
from baro_shared.redact import redact
from baro_shared.scratch import scratch_dir
from baro_shared.service import CommandService
from baro_shared.settings import Settings
from baro_shared.sources import result_bundle_name

log = logging.getLogger(__name__)

integrations = Counter("baro_merger_integrations_total", "Stories integrated", ["outcome"])
merge_conflicts = Counter("baro_merge_conflicts_total", "Story integrations that conflicted")
dropped_artifacts = Counter("baro_dropped_artifacts_total", "Files dropped from delivered branches")
refused_paths = Counter(
    "baro_merger_refused_paths_total", "Paths of story changes refused by a guard", ["rule"]
)
integration_seconds = Histogram(
    "baro_merger_integration_seconds",
    "Time to import and integrate one story",
    buckets=(*FAST_SECONDS_BUCKETS, 5, 10, 30),
)
deliveries = Counter("baro_merger_deliveries_total", "Runs delivered", ["published"])


class Merger(CommandService):
    name = "merger"
    consumer = t.MERGER_CONSUMER
    slots = 8

    def __init__(self, bus: Bus, settings: Settings) -> None:
        super().__init__(bus, settings)
        self.root = settings.integration_dir
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # found now, before any agent starts: one put on PATH later is never what publishes
        self.publishing_tools = PublishingTools.at_start()

    async def run(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await super().run()

    async def handle(self, delivery: Delivery[s.Command]) -> Outcome:
        cmd = delivery.message
        if isinstance(cmd, s.NotifyRun):
            # outside the run's lock: a slow receiver never holds up the run's git work
            await self.notify(cmd)
            return ACK
        async with self._locks[cmd.run_id]:
            match cmd:
                case s.PrepareRun():
                    await self.prepare(cmd)
                case s.IntegrateStories():
                    await self.integrate(cmd)
                case s.ArchiveAttempt():
                    await self.archive(cmd)
                case s.DeliverRun():
                    await self.deliver(cmd)
                case s.GateRun():
                    await self.gate(cmd)
                case _:
                    pass
        return ACK

    def repo(self, run_id: str) -> Path:
        return integration_repo_path(self.root, run_id)

    # ---------------------------------------------------------------- prepare

    async def prepare(self, cmd: s.PrepareRun) -> None:
        async with scratch_dir("baro-src-") as tmp:
            try:
                prepared = await prepare_run(
                    self.root,
                    cmd.run_id,
                    cmd.repo,
                    continue_branch=cmd.continue_branch,
                    author_name=self.settings.git_author_name,
                    author_email=self.settings.git_author_email,
                    sources=self.settings.sources_dir,
                    store=self.bus,
                    scratch=Path(tmp) / "bundles",
                    shown_as=f"the uploaded bundle {cmd.repo.location}"
                    if cmd.repo.kind == "bundle"
                    else None,
                )
            except (SourceError, DeliveryError) as exc:
                await self.bus.publish(
                    s.RunPrepareFailed(run_id=cmd.run_id, error=str(exc)),
                    f"{cmd.run_id}.prepare_failed",
                )
                return
            if prepared.cache_created:
                await asyncio.to_thread(
                    objectcache.trim,
                    self.settings.sources_dir,
                    self.settings.source_cache_max_bytes,
                )
            files_name = f"runs/{cmd.run_id}/files.txt"
            listing = Path(tmp) / "files.txt"
            listing.write_text("\n".join(prepared.files))
            await self.bus.put_file(files_name, listing)
            tiers = await self._model_tiers(cmd.run_id, prepared.base)
            run_checks = await self._run_checks(cmd.run_id, prepared.base)
        await self.bus.publish(
            s.RunPrepared(
                run_id=cmd.run_id,
                base_commit=prepared.base,
                base_ref=prepared.base_ref,
                file_list=files_name,
                file_count=len(prepared.files),
                model_tiers=tiers,
                author=f"{prepared.identity.name} <{prepared.identity.email}>",
                signed=prepared.identity.signing is not None,
                notes=[prepared.identity.note] if prepared.identity.note else [],
                run_checks=[check.text for check in run_checks],
            ),
            f"{cmd.run_id}.prepared",
        )
        await self._forget_finished_runs(cmd.run_id)

    async def _forget_finished_runs(self, current: str) -> None:
        """Keep what the newest ``BARO_KEEP_RUNS`` finished runs left on this machine and
        forget older ones as ``baro clean RUN`` would, so disk does not grow per run
        (``baro_shared.retention``). A local run's refs/baro/<run>/ go only when it was
        delivered: otherwise they are the only copy of its agents' work."""
        run_ids = [p.name.removesuffix(".git") for p in self.root.glob("*.git")]
        try:
            doomed = await retention.to_forget(
                self.bus, run_ids, self.settings.keep_runs, current=current
            )
            for record in doomed:
                source = record.request.repo
                local = source.kind == "path"
                user_repo = Path(source.location) if local and record.state == "delivered" else None
                async with self._locks[record.run_id]:
                    await local_delivery.cleanup_run(
                        self.repo(record.run_id), record.run_id, user_repo
                    )
                    retention.remove_workspaces(self.settings.workspaces_dir, record.run_id)
                self._locks.pop(record.run_id, None)
                if local:  # a cluster run's result stays for `baro fetch` until it expires
                    await self.bus.delete_objects(f"runs/{record.run_id}/")
                log.info("forgot finished run %s (BARO_KEEP_RUNS)", record.run_id)
        except Exception as exc:  # a later run tries again; this one is prepared
            log.warning("could not forget finished runs: %s", exc)

    async def _model_tiers(self, run_id: str, base: str) -> list[s.ModelTier]:
        """The base's .baro.toml [models], for the conductor to pick each story's model.

        An invalid file is not this step's failure: integration reports it, as always."""
        try:
            return list((await read_baro_config(self.repo(run_id), base)).models)
        except ConfigError:
            return []

    # ---------------------------------------------------------------- notify

    async def notify(self, cmd: s.NotifyRun) -> None:
        """Where the run's base .baro.toml [notify] and the run itself ask (notify.py)."""
        try:
            repo = self.repo(cmd.run_id)
            config = (await read_baro_config(repo, await run_base(repo, cmd.run_id))).notify
        except (MergerError, GitError):
            # not prepared (or being prepared right now: a run that waits for answers is
            # notified at once), or an invalid file: the run's own target only
            config = None
        await notify(cmd, config)

    async def _run_checks(self, run_id: str, base: str) -> list[checks.Check]:
        """The run gate's checks, as the run's base configures and has them. An invalid
        .baro.toml is not this step's failure: integration reports it, as always."""
        repo = self.repo(run_id)
        try:
            config = await read_baro_config(repo, base)
        except ConfigError:
            return []
        return await checks.checks_for("run", config.verify, repo, base)

    # ---------------------------------------------------------------- the run gate

    async def gate(self, cmd: s.GateRun) -> None:
        """The run's checks on the integrated result, each in a throwaway checkout of
        ``cmd.head``; a detected check that fails is run again on the run's base."""
        repo = self.repo(cmd.run_id)
        work_root = self.settings.cache_dir / "verify"
        try:
            base = await run_base(repo, cmd.run_id)
            found = await self._run_checks(cmd.run_id, base)
            results = await run_gate(
                repo, cmd.head, base, found, work_root, self._gate_fence(cmd.source)
            )
        except MergerError as exc:
            note = f"the integrated result could not be checked out: {exc}"
            results = [s.CheckResult(command="checkout", result="skipped", note=note)]
        except SandboxRequired as exc:
            results = [s.CheckResult(command="sandbox", result="skipped", note=str(exc))]
        await self.bus.publish(
            s.RunGateChecked(
                run_id=cmd.run_id,
                round=cmd.round,
                head=cmd.head,
                checks=results,
            ),
            f"{cmd.run_id}.gate_checked.{cmd.round}",
        )

    def _gate_fence(self, source: s.RepoSource | None) -> Callable[[Path], Wrap | None]:
        """The fence of the run gate's checks in one checkout: the agents' own (they run
        what the agents wrote), the checkout's directory kept, what it borrows readable."""
        away = Path(source.location) if source is not None and source.kind == "path" else None

        def fence_for(tree: Path) -> Wrap | None:
            fence = agent_fence(
                self.settings,
                keep=tree.parent,
                away_from=away,
                read_only=objectcache.borrowed_chain(tree / ".git"),
            )
            return fence.command if fence is not None else None

        return fence_for

    # ---------------------------------------------------------------- integrate

    async def integrate(self, cmd: s.IntegrateStories) -> None:
        """Integrate the batch's stories one after another, then answer for each, in the
        batch's order. A story that conflicts, is rejected or fails leaves the others to
        go on; every answer names the head after the whole batch and its one bundle.

        Asked again (a redelivery, the merger killed mid-batch), the refs answer: an
        integrated story is found integrated, a conflicted one conflicts again with the
        same head, the rest are integrated now; the answers carry the same message ids.
        """
        run_id = cmd.run_id
        async with scratch_dir("baro-int-") as tmp:
            bundles = [Path(tmp) / f"story-{i}.bundle" for i in range(len(cmd.stories))]
            # the bundles download while the run's refs are read
            downloads = asyncio.gather(
                *(
                    self.bus.get_file(item.bundle, to)
                    for item, to in zip(cmd.stories, bundles, strict=True)
                )
            )
            await asyncio.sleep(0)  # their requests go out before git is started
            head: str | None = None
            out: Path | None = None
            try:
                # the run's refs are read once for the batch and its ref changes written
                # in one transaction at its end, before any answer (integration.OpenRun)
                async with open_run(self.repo(run_id), run_id) as run:
                    await downloads
                    outcomes = [
                        await self._integrate_one(run, cmd, item, bundle)
                        for item, bundle in zip(cmd.stories, bundles, strict=True)
                    ]
                    rerun = any(isinstance(o, (Conflict, Rejected)) for o in outcomes)
                    moved = any(isinstance(o, Integrated) for o in outcomes)
                    # a re-run starts from the head it met, whose bundle the batches
                    # before may not have written
                    if moved or (rerun and run.refs.head != run.refs.base):
                        head = run.refs.head
                        if cmd.head_bundle or rerun:  # a story is to start from the head
                            out = await run.bundle_head(Path(tmp) / "head.bundle")
            except NotPrepared as exc:
                outcomes, rerun = [IntegrationError(str(exc))] * len(cmd.stories), False
            except (MergerError, ConfigError) as exc:  # the head's bundle
                failed = IntegrationError(str(exc))
                outcomes = [failed if isinstance(o, Integrated) else o for o in outcomes]
                head = None
            finally:
                if not downloads.done():  # not needed after all (the run is not prepared)
                    downloads.cancel()
                    await asyncio.gather(downloads, return_exceptions=True)
            bundle_name = None
            if out is not None:
                bundle_name = f"runs/{run_id}/integration/{head}.bundle"
                await self.bus.put_file(bundle_name, out)
        if rerun:
            await self._preserve(run_id)
        for item, outcome in zip(cmd.stories, outcomes, strict=True):
            await self._answer(run_id, item, outcome, head, bundle_name)

    async def _integrate_one(
        self, run: OpenRun, cmd: s.IntegrateStories, item: s.StoryToIntegrate, bundle: Path
    ) -> Integrated | Conflict | Rejected | IntegrationError:
        started = time.perf_counter()
        try:
            await run.import_bundle(item.story.id, item.attempt, bundle, head=item.head_commit)
            result = await run.integrate(
                item.story,
                item.attempt,
                story_base=item.story_base,
                goal=cmd.goal,
                policy=cmd.surface,
                mode=cmd.mode,
                agent=item.agent,
            )
        except (MergerError, ConfigError) as exc:
            return IntegrationError(str(exc))
        if isinstance(result, Integrated):
            integration_seconds.observe(time.perf_counter() - started)
        return result

    async def _answer(
        self,
        run_id: str,
        item: s.StoryToIntegrate,
        outcome: Integrated | Conflict | Rejected | IntegrationError,
        head: str | None,
        bundle_name: str | None,
    ) -> None:
        story_id, attempt = item.story.id, item.attempt
        match outcome:
            case Conflict():
                merge_conflicts.inc()
                integrations.labels(outcome="conflict").inc()
                await self.bus.publish(
                    s.MergeConflict(
                        run_id=run_id,
                        story_id=story_id,
                        attempt=attempt,
                        paths=outcome.paths,
                        story_ref=outcome.story_ref,
                        integration_head=head,
                        integration_bundle=bundle_name,
                    ),
                    f"{run_id}.conflict.{story_id}.{attempt}",
                )
            case Rejected():
                integrations.labels(outcome="rejected").inc()
                await self.bus.publish(
                    s.StoryRejected(
                        run_id=run_id,
                        story_id=story_id,
                        attempt=attempt,
                        surface_violations=outcome.outside_surface,
                        refused=refusals(outcome.refused),
                        dropped_artifacts=[d.path for d in outcome.dropped],
                        surface_policy=outcome.policy,
                        story_ref=outcome.story_ref,
                        integration_head=head,
                        integration_bundle=bundle_name,
                    ),
                    f"{run_id}.rejected.{story_id}.{attempt}",
                )
            case IntegrationError():
                integrations.labels(outcome="failed").inc()
                await self.bus.publish(
                    s.IntegrationFailed(
                        run_id=run_id, story_id=story_id, attempt=attempt, error=outcome.error
                    ),
                    f"{run_id}.integration_failed.{story_id}.{attempt}",
                )
            case Integrated():
                integrations.labels(outcome="integrated").inc()
                if not outcome.already_integrated:
                    dropped_artifacts.inc(len(outcome.dropped))
                    for refusal in outcome.refused:
                        refused_paths.labels(rule=refusal.rule).inc()
                await self.bus.publish(
                    s.StoryIntegrated(
                        run_id=run_id,
                        story_id=story_id,
                        attempt=attempt,
                        integration_commit=outcome.commit,
                        integration_head=head,
                        integration_bundle=bundle_name,
                        dropped_artifacts=outcome.dropped_paths,
                        story_ref=outcome.story_ref,
                        refused=refusals(outcome.refused),
                        surface_violations=outcome.outside_surface,
                        surface_policy=outcome.policy,
                        nothing_left=outcome.nothing_left,
                        files=outcome.files,
                    ),
                    f"{run_id}.integrated.{story_id}.{attempt}",
                )

    async def archive(self, cmd: s.ArchiveAttempt) -> None:
        repo = self.repo(cmd.run_id)
        try:
            async with scratch_dir("baro-arc-") as tmp:
                bundle = Path(tmp) / "attempt.bundle"
                await self.bus.get_file(cmd.bundle, bundle)
                await import_story_bundle(repo, cmd.run_id, cmd.story_id, cmd.attempt, bundle)
        except MergerError as exc:
            log.warning(
                "could not archive %s/%s attempt %d: %s", cmd.run_id, cmd.story_id, cmd.attempt, exc
            )
            return
        await self._preserve(cmd.run_id)

    async def _preserve(self, run_id: str) -> None:
        """Mirror the run's refs into the user's repository (local runs), so nothing is lost."""
        got = await self.bus.get_record(run_id)
        if got is None or got[0].request.repo.kind != "path":
            return
        try:
            await preserve_refs(self.repo(run_id), run_id, Path(got[0].request.repo.location))
        except MergerError as exc:
            log.warning("could not keep refs of %s in the user's repository: %s", run_id, exc)

    # ---------------------------------------------------------------- deliver

    async def deliver(self, cmd: s.DeliverRun) -> None:
        run_id = cmd.run_id
        repo = self.repo(run_id)
        if cmd.repo.kind != "path":
            await self.deliver_to_object_store(cmd)
            return
        try:
            result = await deliver(
                repo,
                run_id,
                Path(cmd.repo.location),
                slug=cmd.slug,
                continue_branch=cmd.continue_branch,
                checkpoint=cmd.checkpoint,
            )
            verdict, output = gate_verdict(cmd.gate) if result.branch else (None, None)
        except (MergerError, ConfigError) as exc:
            await self.bus.publish(
                s.DeliveryFailed(run_id=run_id, error=str(exc)), f"{run_id}.delivery_failed"
            )
            return
        dropped = await self._dropped(run_id)
        publication = await self._publish(cmd, result, verdict, dropped)
        deliveries.labels(published=publication.published).inc()
        await self.bus.publish(
            s.RunDelivered(
                run_id=run_id,
                branch=result.branch,
                base=result.base,
                head=result.head,
                commits=result.commits,
                files_changed=result.files_changed,
                diffstat=result.diffstat,
                dropped_artifacts=dropped,
                published=publication.published,
                publish_note=publication.note,
                pr_url=publication.pr_url,
                verify=verdict,
                verify_output=output,
                checks=list(cmd.gate or []),
                partial=cmd.checkpoint is not None and result.branch is not None,
            ),
            f"{run_id}.delivered",
        )

    async def deliver_to_object_store(self, cmd: s.DeliverRun) -> None:
        """A URL or bundle source: there is no user's repository here, so the result
        (integration head and every attempt, as refs) goes to the object store as one
        bundle, which `baro fetch RUN` brings into a local repository."""
        run_id = cmd.run_id
        repo = self.repo(run_id)
        checkpoint = cmd.checkpoint
        try:
            if checkpoint is not None and checkpoint.deliver:
                # the bundle carries the marker (refs/baro/<run>/checkpoint); `baro fetch`
                # delivers it as the checkpoint branch
                head = await integration_head(repo, run_id)
                if head != await run_base(repo, run_id):
                    await mark_checkpoint(repo, run_id, head, checkpoint)
            async with scratch_dir("baro-out-") as tmp:
                result = await bundle_result(repo, run_id, Path(tmp) / "result.bundle")
                name = result_bundle_name(run_id) if result.bundle else None
                if name and result.bundle:
                    await self.bus.put_file(name, result.bundle)
            verdict, output = gate_verdict(cmd.gate) if result.changed else (None, None)
        except (MergerError, ConfigError) as exc:
            await self.bus.publish(
                s.DeliveryFailed(run_id=run_id, error=str(exc)), f"{run_id}.delivery_failed"
            )
            return
        branch = f"baro/{slugify(cmd.slug)}" if result.changed else None
        if branch and checkpoint is not None:
            branch = f"baro/{checkpoint_slug(cmd.slug)}" if checkpoint.deliver else None
        if name is None:
            note = "the run changed nothing: there is no result to fetch"
        else:
            note = f"result kept in the object store: `baro fetch {run_id}` brings it into a local repository"
        published: Literal["object_store", "pushed", "pr"] = "object_store"
        pr_url = None
        if branch and checkpoint is not None and cmd.publish != "local":
            note = f"a partial result (a checkpoint) is never published; {note}"
        elif branch and cmd.publish != "local":
            if cmd.repo.kind != "url":
                note += "; nothing was pushed: an uploaded repository has no remote here"
            else:
                branch = pushed_branch_name(cmd.slug, run_id)
                publication = await self._publish_url(cmd, result, branch, verdict)
                if publication.published == "local":
                    branch = f"baro/{slugify(cmd.slug)}"
                else:
                    published = publication.published
                    pr_url = publication.pr_url
                note = f"{publication.note}; {note}"
        deliveries.labels(published=published).inc()
        await self.bus.publish(
            s.RunDelivered(
                run_id=run_id,
                branch=branch,
                base=result.base,
                head=result.head,
                commits=result.commits,
                files_changed=result.files_changed,
                diffstat=result.diffstat,
                dropped_artifacts=await self._dropped(run_id),
                published=published,
                publish_note=note,
                pr_url=pr_url,
                result_bundle=name,
                verify=verdict,
                verify_output=output,
                checks=list(cmd.gate or []),
                partial=checkpoint is not None and branch is not None,
            ),
            f"{run_id}.delivered",
        )

    async def _publish_url(
        self, cmd: s.DeliverRun, result: RunResult, branch: str, verdict: str | None
    ) -> Publication:
        """Push (and open the PR for) a URL run's result to the URL, from the integration
        repository, under the same rules as a local run's publishing."""
        repo = self.repo(cmd.run_id)
        try:
            await stage_push(repo, cmd.repo.location, branch, result.head)
        except MergerError as exc:
            return Publication("local", f"nothing was pushed ({redact(str(exc))[:200]})")
        staged = local_delivery.Delivery(
            branch, result.base, result.head, result.commits, result.files_changed,
            result.diffstat, False, False, [],
        )  # fmt: skip
        here = msgspec.structs.replace(
            cmd, repo=s.RepoSource(kind="path", location=str(repo), ref=cmd.repo.ref)
        )
        publication = await self._publish(here, staged, verdict, await self._dropped(cmd.run_id))
        note = (publication.note or "").removeprefix(f"{branch} is in your repository only: ")
        return Publication(publication.published, note, publication.pr_url)

    async def _publish(
        self,
        cmd: s.DeliverRun,
        result: local_delivery.Delivery,
        verdict: str | None,
        dropped: list[str],
    ) -> Publication:
        """Push / open the PR as asked, for a complete, verified result only."""
        branch = result.branch
        if cmd.publish == "local" or branch is None:
            return Publication("local", None)
        here = f"{branch} is in your repository only"
        if cmd.checkpoint is not None:
            return Publication(
                "local", f"{here}: a partial result (a checkpoint) is never published"
            )
        if verdict == "failed":
            return Publication("local", f"{here}: verification failed, so nothing was published")
        got = await self.bus.get_record(cmd.run_id)
        record = got[0] if got is not None else None
        if record is not None:
            missing = [
                st.story.id for st in record.stories if st.status not in ("integrated", "replaced")
            ]
            if missing:
                return Publication(
                    "local",
                    f"{here}: {len(missing)} of {len(record.stories)} stories were not "
                    f"integrated ({', '.join(missing)}), so nothing was published",
                )
            emptied = [st.story.id for st in record.stories if st.nothing_left]
            if emptied:
                return Publication(
                    "local",
                    f"{here}: every change of {', '.join(emptied)} was left out (see the "
                    "refused paths and dropped artifacts), so nothing was published",
                )
        try:
            body = (
                pr_body(
                    record,
                    commits=result.commits,
                    files_changed=result.files_changed,
                    dropped=dropped,
                    verify=verdict,
                    verify_command=None,
                    now=time.time(),
                    gate=cmd.gate or [],
                )
                if record is not None
                else cmd.summary_markdown
            )
            return await publish(
                Path(cmd.repo.location),
                branch,
                cmd.publish,
                title=pr_title(cmd.goal),
                body=body,
                source_ref=cmd.repo.ref,
                tools=self.publishing_tools,
            )
        except Exception as exc:  # publishing never takes the delivered branch down with it
            log.warning("publishing %s of %s failed: %s", branch, cmd.run_id, redact(str(exc)))
            return Publication("local", f"{here}: publishing failed ({redact(str(exc))[:200]})")

    async def _dropped(self, run_id: str) -> list[str]:
        got = await self.bus.get_record(run_id)
        if got is None:
            return []
        return sorted({p for st in got[0].stories for p in st.dropped_artifacts})


@dataclass(frozen=True)
class IntegrationError:
    """A story of a batch that could not be integrated (the others go on)."""

    error: str


def refusals(refused: list[Refused]) -> list[s.Refusal]:
    return [s.Refusal(path=r.path, rule=r.rule, reason=r.reason) for r in refused]


async def create(bus: Bus, settings: Settings) -> Merger:
    return Merger(bus, settings)


def gate_verdict(gate: list[s.CheckResult] | None) -> tuple[s.CheckState | None, str | None]:
    """The run gate's verdict and its failed checks' output (None, None: no gate ran)."""
    if not gate:
        return None, None
    return checks.verdict(gate), checks.failures_text(gate) or None
