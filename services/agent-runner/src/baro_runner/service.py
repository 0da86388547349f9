"""The agent-runner's bus handler: RunStory in; StoryStarted, agent events, StoryFinished out.

Stateless: everything a story needs is in the command and the object store. The attempt
number is the command's attempt plus redeliveries, so a story whose runner died comes back
as attempt+1. Before starting and while the agent works, the runner checks the run record:
a cancelled or interrupted run, a superseded attempt, or a command sent before the run was
resumed stops the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import msgspec
from prometheus_client import Counter, Gauge, Histogram

from baro_runner import agent, observe, workspace
from baro_runner.backends import (
    AgentCommand,
    BackendUnavailable,
    agent_command,
    fenced,
    story_fence,
)
from baro_runner.ports import NoFreePorts, PortBlocks, PortLease, PortRange
from baro_runner.prompt import build_prompt
from baro_runner.rawlog import STREAMS, AgentLogs
from baro_runner.reaper import GroupRegistry
from baro_runner.standby import StandbyLaunchers
from baro_shared import checks, retention
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.backends import auth_advice, check_env, sandbox_unavailable
from baro_shared.bus import ACK, Bus, Delivery, Nak, Outcome, Worker, process_name
from baro_shared.inputs import command_problem
from baro_shared.mappers import mapper_for
from baro_shared.metrics import RUN_SECONDS_BUCKETS
from baro_shared.processes import interruption
from baro_shared.repoconfig import (
    DEFAULT_REPO_CONFIG,
    RepoConfig,
    RepoConfigError,
    read_repo_config_at,
)
from baro_shared.retry import Budget
from baro_shared.scratch import scratch_dir
from baro_shared.settings import Settings
from baro_shared.surfaces import covered

log = logging.getLogger(__name__)

running_agents = Gauge("baro_runner_running_agents", "Agents running in this runner process")
agent_runs = Counter(
    "baro_runner_agent_runs_total", "Agent processes finished, by outcome", ["backend", "status"]
)
agent_seconds = Histogram(
    "baro_runner_agent_seconds",
    "Wall-clock of one agent process",
    ["backend"],
    buckets=RUN_SECONDS_BUCKETS,
)
tokens = Counter(
    "baro_tokens_total",
    "Tokens reported by agents, by backend and kind",
    ["backend", "kind", "mode"],
)
cost = Counter(
    "baro_cost_usd_total",
    "US dollars agents reported for their model calls, by backend and mode",
    ["backend", "mode"],
)
mapper_errors = Counter(
    "baro_mapper_skipped_lines_total", "Wire lines a mapper could not parse", ["backend"]
)
dropped_events = Counter(
    "baro_runner_dropped_agent_events_total",
    "Agent events not published because the agent flooded output",
)

EVENT_QUEUE = 2000
ESSENTIAL = (s.SessionStarted, s.Usage, s.AgentError, s.AgentFinished, s.FileChanged, s.CommandRun)
STATE_CHECK_S = 2.0
LOST_WHILE_SAVING = (
    "the runner of the previous attempt was lost while it saved the result, after its agent "
    "had ended"
)


class Runner:
    name = "agent-runner"

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.runner_id = settings.runner_id or process_name(self.name)
        self.cancelled: dict[str, str] = {}
        self.worker = Worker(
            bus,
            t.RUNNER_CONSUMER,
            s.command_decoder,
            self.handle,
            slots=settings.runner_slots,
            heartbeat_s=settings.heartbeat_s,
            service=self.name,
            check=command_problem,
        )
        self.max_deliver = bus.topology.consumer(t.RUNNER_CONSUMER).max_deliver
        self.groups = GroupRegistry(settings.cache_dir / "agent-groups")
        self.ports = PortBlocks(
            settings.cache_dir / "ports",
            PortRange(settings.port_range_start, settings.port_block_size, settings.port_blocks),
        )
        self.cleanups: set[asyncio.Task[None]] = set()
        # a spare clone is reused only where nothing an agent started can outlive it
        fenced = sandbox_unavailable(settings) is None
        self.spares = settings.spare_workspaces if fenced else 0
        self.standby = StandbyLaunchers(
            min(settings.standby_launchers, settings.runner_slots) if fenced else 0,
            preload=settings.backend == "scripted",
        )

    def clean_up_later(self, ws: workspace.Workspace) -> None:
        """Remove a finished attempt's workspace after its handler has returned: the
        attempt is reported and its slot free for the next story meanwhile (waited for
        when the runner stops)."""
        task = asyncio.create_task(ws.retire(self.spares) if self.spares else ws.remove())
        self.cleanups.add(task)
        task.add_done_callback(self.cleanups.discard)

    def ready(self) -> bool:
        return (
            self.bus.nc.is_connected
            and self.worker.ready.is_set()
            and not self.worker.shutdown.is_set()
        )

    def stop(self) -> None:
        self.worker.stop()

    async def run(self) -> None:
        self.groups.reap_orphans({self.runner_id})
        sub = await self.bus.nc.subscribe(f"{t.CANCEL_SUBJECT_PREFIX}.*", cb=self._on_cancel)
        backlog = asyncio.create_task(observe.watch_backlog(self.bus, self.worker.shutdown))
        self.standby.fill()
        try:
            await self.worker.run()
        finally:
            backlog.cancel()
            await self.standby.close()
            if self.cleanups:
                await asyncio.gather(*self.cleanups, return_exceptions=True)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_cancel(self, msg: object) -> None:
        subject: str = msg.subject  # type: ignore[attr-defined]
        self.cancelled[subject.rsplit(".", 1)[-1]] = "run cancelled"

    # ------------------------------------------------------------------ handling

    async def handle(self, delivery: Delivery[s.Command]) -> Outcome:
        cmd = delivery.message
        if not isinstance(cmd, s.RunStory):
            return ACK
        attempt = cmd.attempt + delivery.attempt - 1
        # asked together, one round trip on the way to the agent's start: a claim taken on
        # a command that turns out stale is never wanted again (no command carries its
        # attempt number again: a redelivery or a new dispatch counts one up)
        stale, claimed = await asyncio.gather(
            self._stale(cmd, attempt),
            self.bus.claim(t.claim_key(cmd.run_id, cmd.story.id, attempt), self.runner_id),
        )
        if stale and stale is not LOST_WHILE_SAVING:
            log.info("skipping %s/%s attempt %d: %s", cmd.run_id, cmd.story.id, attempt, stale)
            return ACK
        if delivery.shutdown.is_set():
            return Nak(0.0, "shutting down")
        if not claimed:
            log.info(
                "skipping %s/%s attempt %d: another runner has it",
                cmd.run_id,
                cmd.story.id,
                attempt,
            )
            return ACK
        job = _Job(self, cmd, attempt, delivery)
        if stale is LOST_WHILE_SAVING:
            # its agent slot went to another story: running the agent again here would
            # take one more than the run's parallelism; the conductor retries it in turn
            return await job._finish("failed", "runner_lost", LOST_WHILE_SAVING)
        return await job.execute()

    async def _stale(self, cmd: s.RunStory, attempt: int) -> str | None:
        got = await self.bus.get_record(cmd.run_id)
        if got is None:
            return "unknown run"
        record = got[0]
        if record.state in s.TERMINAL_RUN_STATES:
            return f"run is {record.state}"
        if interruption(record) is not None:
            return "run is interrupted"
        if cmd.resumes < record.resumes:
            return "sent before the run was resumed"
        story = record.story(cmd.story.id)
        if story is None:
            return "unknown story"
        if story.status not in ("assigned", "running"):
            return f"story is {story.status}"
        if story.attempt > attempt:
            return f"superseded by attempt {story.attempt}"
        if story.agent_ended and story.attempt < attempt:
            return LOST_WHILE_SAVING
        return None


class _Job:
    """One attempt of one story on this runner."""

    def __init__(
        self, runner: Runner, cmd: s.RunStory, attempt: int, delivery: Delivery[s.Command]
    ) -> None:
        self.runner = runner
        self.bus = runner.bus
        self.settings = runner.settings
        self.cmd = msgspec.structs.replace(cmd, attempt=attempt)  # the agent sees its real attempt
        self.attempt = attempt
        self.delivery = delivery
        self.seq = 0
        self.queue: asyncio.Queue[s.NormalizedEvent | None] = asyncio.Queue(maxsize=EVENT_QUEUE)
        self._last_check = 0.0
        self._stop_reason: str | None = None
        self.pgid: int | None = None
        self.allowance: int | None = None  # of the run's token budget, for this attempt
        # the run base's .baro.toml, read once by the setup, before the agent
        self.config: RepoConfig = DEFAULT_REPO_CONFIG
        self.checks: list[checks.Check] = []  # the story's gate, found by the setup
        self.logs_stored: asyncio.Task[None] | None = None  # the agent's raw output, uploading

    @property
    def config_commit(self) -> str:
        """Where the story's .baro.toml is read: the run's base, never the story's own."""
        return self.cmd.run_base or self.cmd.base_commit

    @property
    def story_id(self) -> str:
        return self.cmd.story.id

    async def _spawned(self, ws: workspace.Workspace, pid: int) -> None:
        self.pgid = pid  # the agent leads its own process group
        self.runner.groups.add(pid, self.runner.runner_id)
        await self._started(ws)

    async def _started(self, ws: workspace.Workspace | None) -> None:
        """Tell the conductor this attempt is live (published once the agent process runs)."""
        cmd = self.cmd
        await self.bus.publish(
            s.StoryStarted(
                run_id=cmd.run_id,
                story_id=self.story_id,
                attempt=self.attempt,
                runner=self.runner.runner_id,
                workspace=str(ws.repo) if ws else None,
                base_commit=cmd.base_commit,
                backend=cmd.backend,
                model=cmd.model or self.runner.settings.model,
            ),
            f"{cmd.run_id}.started.{self.story_id}.{self.attempt}",
        )

    async def execute(self) -> Outcome:
        cmd = self.cmd
        self.allowance = await self._allowance_left()
        if self.allowance is not None and self.allowance <= 0:
            return await self._finish(
                "budget_exceeded",
                s.RUN_BUDGET_EXCEEDED,
                f"the run's token budget: this story's share of {cmd.token_allowance:,} tokens "
                "was spent by its earlier attempts",
            )
        root = workspace.workspace_path(
            self.settings.workspaces_dir, cmd.run_id, self.story_id, self.attempt
        )
        try:
            with self.runner.ports.lease() as ports:
                return await self._in_workspace(root, ports)
        except NoFreePorts as exc:
            return Nak(5.0, str(exc))

    async def _in_workspace(self, root: Path, ports: PortLease) -> Outcome:
        cmd = self.cmd
        async with scratch_dir("baro-dl-") as tmp:
            try:
                ws = await self._prepare(root, Path(tmp))
                ws.env.update(ports.env)
                await self._setup(ws)
            except workspace.SetupFailed as exc:
                log.info(
                    "setup failed for %s/%s; workspace kept at %s", cmd.run_id, self.story_id, root
                )
                return await self._finish("failed", "setup_failed", str(exc), kept=root)
            except (workspace.WorkspaceError, OSError, msgspec.DecodeError) as exc:
                await workspace.Workspace(root).remove()
                return await self._finish("failed", "workspace_error", str(exc))
            except Exception as exc:  # object store or bus trouble: hand the story back
                log.warning("workspace for %s/%s failed: %s", cmd.run_id, self.story_id, exc)
                await workspace.Workspace(root).remove()
                return Nak(5.0, f"workspace: {exc}")
        outcome = await self._run_agent(ws)
        await self._forget_finished_runs()
        return outcome

    async def _forget_finished_runs(self) -> None:
        """Remove the workspaces that finished runs beyond the newest ``BARO_KEEP_RUNS``
        left on this runner (``baro_shared.retention``)."""
        root = self.settings.workspaces_dir
        try:
            run_ids = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
            for record in await retention.to_forget(
                self.bus, run_ids, self.settings.keep_runs, current=self.cmd.run_id
            ):
                retention.remove_workspaces(root, record.run_id)
        except Exception as exc:  # the next story tries again
            log.warning("could not forget the workspaces of finished runs: %s", exc)

    async def _prepare(self, root: Path, tmp: Path) -> workspace.Workspace:
        cmd = self.cmd
        base_bundle = None
        download: asyncio.Task[None] | None = None
        if cmd.base_bundle:
            base_bundle = tmp / "base.bundle"
            # downloaded while the clone is made; the clone waits for it only to unbundle it
            download = asyncio.create_task(self.bus.get_file(cmd.base_bundle, base_bundle))
        try:
            ws = await workspace.prepare(
                root,
                cmd.source,
                cmd.base_commit,
                sources=self.settings.sources_dir,
                run_base=cmd.run_base,
                base_bundle=base_bundle,
                base_bundle_ready=download,
                store=self.bus,  # a bundle source is downloaded only where the cache lacks it
                downloads=tmp,
                reuse=self.runner.spares > 0,
            )
        finally:
            if download is not None and not download.done():
                download.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await download
        if cmd.resume is not None:  # a repair turn goes on from an earlier attempt's result
            earlier = tmp / "resume.bundle"
            await self.bus.get_file(cmd.resume.bundle, earlier)
            await workspace.resume(ws, earlier, cmd.resume.head)
        return ws

    async def _setup(self, ws: workspace.Workspace) -> None:
        """The repository's [setup], reported as one command event of the attempt."""
        try:
            fence = story_fence(ws, self.cmd, self.settings)
        except BackendUnavailable as exc:
            raise workspace.SetupFailed(str(exc)) from None
        at = self.cmd.resume.head if self.cmd.resume is not None else self.cmd.base_commit
        try:
            # read before the agent runs, and only then: what the gate and the size limit
            # go by is never read from a clone the agent has had its hands on
            self.config = await read_repo_config_at(ws.repo, self.config_commit)
        except RepoConfigError as exc:
            raise workspace.SetupFailed(str(exc)) from None
        self.checks = await checks.checks_for(
            "story", self.config.verify, ws.repo, self.config_commit
        )
        report = await workspace.setup(ws, self.cmd.source, at, config=self.config, fence=fence)
        if report is None:
            return
        log.info("setup of %s/%s: %s", self.cmd.run_id, self.story_id, report.summary())
        await self._command_event(
            f"baro setup: {report.summary()}", report.exit_code, report.output
        )

    async def _gate(self, ws: workspace.Workspace, changed: list[str]) -> list[s.CheckResult]:
        """The story's checks on its result, in its workspace (``baro_shared.checks``): the
        run base's ``[verify] story`` and the conventional checks the run base has. A
        detected check that fails is run again at the story's base; a file a configured
        check runs, when the story changed it, runs as the story's base has it."""
        cmd = self.cmd
        found = self.checks
        if not found:
            return []
        user_repo = Path(cmd.source.location) if cmd.source.kind == "path" else None
        env = check_env(ws.scratch, workdir=ws.repo, away_from=user_repo) | ws.env
        fence = story_fence(ws, cmd, self.settings)  # the checks run what the agent wrote
        wrap = fence.command if fence is not None else None

        async def at_base(suspect: list[checks.Check]) -> list[s.CheckResult]:
            await workspace.switch(ws, cmd.base_commit)
            try:
                return await checks.run_checks(suspect, ws.repo, env, wrap=wrap)
            finally:
                await workspace.switch(ws, workspace.STORY_BRANCH)

        pinned = await checks.pin_named_paths(ws.repo, cmd.base_commit, found, changed)
        results = await checks.run_checks(found, ws.repo, env, at_base, wrap)
        results = [checks.pinned_note(r, c, pinned) for r, c in zip(results, found, strict=True)]
        for result in results:
            await self._command_event(
                f"baro check: {checks.describe(result)}", result.exit_code, result.output
            )
        return results

    async def _supervised_gate(
        self, ws: workspace.Workspace, changed: list[str]
    ) -> tuple[list[s.CheckResult], str | None]:
        """The gate, stopped (its commands killed) when the run is cancelled or the runner
        shuts down meanwhile; then the reason comes back instead of results."""
        gate = asyncio.create_task(self._gate(ws, changed))
        while True:
            done, _ = await asyncio.wait({gate}, timeout=STATE_CHECK_S)
            if done:
                return gate.result(), None
            stopped = await self._stop_check()
            if stopped is not None:
                gate.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await gate
                return [], stopped

    async def _command_event(self, command: str, exit_code: int | None, output: str) -> None:
        """One command event of the attempt that baro itself ran (setup, checks)."""
        self.seq += 1
        event = s.CommandRun(command=command, exit_code=exit_code, output=output[-2000:])
        with contextlib.suppress(Exception):
            await self.bus.publish_agent_event(
                s.AgentEventMsg(
                    run_id=self.cmd.run_id,
                    story_id=self.story_id,
                    attempt=self.attempt,
                    seq=self.seq,
                    event=event,
                )
            )

    async def _run_agent(self, ws: workspace.Workspace) -> Outcome:
        cmd = self.cmd
        try:
            # off the event loop: the prompt's file and the fence's paths touch the disk,
            # which can keep a write or a stat waiting while other stories hand over
            command = await asyncio.to_thread(self._agent_command, ws)
        except BackendUnavailable as exc:
            await ws.remove()
            return await self._finish("failed", "backend_unavailable", str(exc))
        mapper = mapper_for(cmd.backend)
        publisher = asyncio.create_task(self._publish_events())
        limits = agent.Limits(
            stall_timeout=cmd.limits.stall_timeout_s,
            wall_timeout=cmd.limits.story_timeout_s,
            token_budget=cmd.limits.token_budget,
            run_allowance=self.allowance,
            run_budget=cmd.limits.run_token_budget,
        )
        logs = AgentLogs(ws.logs, self.settings.agent_log_max_bytes)
        running_agents.inc()  # the agent's process alone: not the setup, not the saving after
        try:
            outcome = await agent.run_agent(
                command,
                mapper,
                limits,
                self._sink,
                self._stop_check,
                on_spawn=lambda pid: self._spawned(ws, pid),
                recorder=logs,
                standby=self.runner.standby,
            )
        finally:
            running_agents.dec()
            if self.pgid is not None:
                self.runner.groups.remove(self.pgid)
            await self.queue.put(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publisher, timeout=10)
            logs.close()
        # stored while the result is collected, and before the attempt is reported (_finish)
        self.logs_stored = asyncio.create_task(self._upload_logs(logs))
        if mapper.skipped_lines:
            mapper_errors.labels(backend=cmd.backend).inc(mapper.skipped_lines)
        agent_runs.labels(backend=cmd.backend, status=outcome.status).inc()
        agent_seconds.labels(backend=cmd.backend).observe(outcome.seconds)
        self._count_tokens(outcome.usage)
        if outcome.status == "cancelled" and self.delivery.shutdown.is_set():
            await self.logs_stored
            await ws.remove()
            return Nak(0.0, "runner shutting down; story handed back")
        # nothing more runs in its fence (a retryable attempt keeps its slot: this command
        # comes back for it)
        if outcome.status != "retryable" and (not self.checks or outcome.status != "success"):
            await self._agent_ended()
        return await self._collect(ws, outcome)

    async def _agent_ended(self) -> None:
        """Hand the attempt's agent slot on while its result is saved: the conductor may
        start the run's next story and this runner may take it."""
        cmd = self.cmd
        with contextlib.suppress(Exception):  # without it, StoryFinished frees the slot
            await self.bus.publish(
                s.StoryAgentEnded(
                    run_id=cmd.run_id,
                    story_id=self.story_id,
                    attempt=self.attempt,
                    runner=self.runner.runner_id,
                ),
                f"{cmd.run_id}.agent_ended.{self.story_id}.{self.attempt}",
            )
        self.delivery.free_slot()

    def _agent_command(self, ws: workspace.Workspace) -> AgentCommand:
        cmd = self.cmd
        return fenced(
            agent_command(cmd.backend, build_prompt(cmd), ws, cmd, self.settings),
            story_fence(ws, cmd, self.settings),
        )

    async def _upload_logs(self, logs: AgentLogs) -> None:
        """The attempt's raw stdout and stderr into the object store, for ``baro logs``; a
        log that cannot be stored never fails the story."""
        cmd = self.cmd
        async with scratch_dir("baro-log-") as tmp:
            for stream in STREAMS:
                path = Path(tmp) / stream
                try:
                    if await asyncio.to_thread(logs.joined, stream, path):
                        name = t.agent_log_object(cmd.run_id, self.story_id, self.attempt, stream)
                        await self.bus.put_file(name, path)
                except Exception as exc:
                    log.warning(
                        "agent %s of %s/%s attempt %d not stored: %s",
                        stream, cmd.run_id, self.story_id, self.attempt, exc,
                    )  # fmt: skip

    async def _collect(self, ws: workspace.Workspace, outcome: agent.AgentOutcome) -> Outcome:
        """Commit and bundle what the agent changed, then report the attempt."""
        cmd = self.cmd
        status, reason, error = outcome.status, outcome.exit_reason, outcome.error
        bundle_name = None
        async with scratch_dir("baro-bundle-") as tmp:
            path = Path(tmp) / "result.bundle"
            try:
                change = await workspace.commit_result(
                    ws, cmd.base_commit, cmd.story.title,
                    max_file_bytes=self.config.surface.max_file_bytes, bundle=path,
                )  # fmt: skip
            except Exception as exc:
                return await self._finish(
                    "failed",
                    "commit_failed",
                    f"could not collect the agent's changes: {exc}",
                    outcome=outcome,
                    kept=ws.root,
                )
            if change.changed_files:  # commit_result wrote its bundle
                # named by content: two deliveries of one attempt can never overwrite each other
                bundle_name = f"runs/{cmd.run_id}/stories/{self.story_id}/{self.attempt}-{change.head[:16]}.bundle"
                await self.bus.put_file(bundle_name, path)
        # a story that may change nothing did so only when it left nothing out either
        nothing_asked = cmd.story.may_change_nothing and not change.left_out
        if status == "success" and not change.changed_files and not nothing_asked:
            left_out = "; ".join(f"{r.path} ({r.reason})" for r in change.left_out)
            status, reason, error = (
                "failed",
                "no_changes",
                f"the agent's only changes were left out: {left_out}"
                if left_out
                else "the agent finished without changing any file",
            )
        gate: list[s.CheckResult] = []
        if status == "success":  # the result is committed: what the checks leave is not in it
            gate, stopped = await self._supervised_gate(ws, change.changed_files)
            if stopped is not None and self.delivery.shutdown.is_set():
                if self.logs_stored is not None:
                    await self.logs_stored
                await ws.remove()
                return Nak(0.0, "runner shutting down; story handed back")
            if stopped is not None:
                status, reason, error = "cancelled", "cancelled", stopped
            elif checks.verdict(gate) == "failed":
                failed = [checks.describe(r) for r in gate if r.result == "failed"]
                status, reason, error = "failed", "checks_failed", "; ".join(failed)
        diff = None
        if status == "success" and cmd.review:  # the critic reads the change
            diff = await workspace.change_diff(ws, cmd.base_commit)
        violations = (
            [f for f in change.changed_files if not covered(f, cmd.story.write_surface)]
            if cmd.story.write_surface
            else []
        )
        # the result is in the object store now; a failed attempt's workspace is kept for
        # inspection (`baro clean` removes it)
        keep = self.settings.keep_workspaces or status not in ("success", "cancelled", "retryable")
        result = await self._finish(
            status,
            reason,
            error,
            outcome=outcome,
            changed=change.changed_files,
            violations=violations,
            refused=change.left_out,
            bundle=bundle_name,
            head=change.head,
            kept=ws.root if keep else None,
            gate=gate,
            diff=diff,
        )
        if not keep:
            self.runner.clean_up_later(ws)
        return result

    async def _finish(
        self,
        status: s.AttemptStatus,
        reason: str,
        error: str | None,
        *,
        outcome: agent.AgentOutcome | None = None,
        changed: list[str] | None = None,
        violations: list[str] | None = None,
        refused: list[s.Refusal] | None = None,
        bundle: str | None = None,
        head: str | None = None,
        kept: Path | None = None,
        gate: list[s.CheckResult] | None = None,
        diff: str | None = None,
    ) -> Outcome:
        cmd = self.cmd
        if self.logs_stored is not None:  # `baro logs` finds an ended attempt's output
            await self.logs_stored
        # the attempt's end: its message's ts and where its retry delay starts, so that the
        # conductor (whose budget window opens at the first failure's ts) and this runner
        # agree on when the window closes however long the upload above took
        ended = time.time()
        retry_after = None
        if status == "retryable":
            retry_after, spent = await self._retry_delay(ended)
            if retry_after is None:
                status, reason, error = "failed", "retries_exhausted", f"{spent}: {error}"
        elif reason == "auth_failed":
            advice = auth_advice(
                cmd.backend, self.settings, cmd.model or self.settings.model, error or ""
            )
            error = f"{error} — {advice}"
        observe.attempts.labels(backend=cmd.backend, status=status, reason=reason or "none").inc()
        finished = s.StoryFinished(
            ts=ended,
            run_id=cmd.run_id,
            story_id=self.story_id,
            attempt=self.attempt,
            status=status,
            exit_reason=reason,
            error=error or None,
            changed_files=changed or [],
            surface_violations=violations or [],
            refused=refused or [],
            bundle=bundle,
            base_commit=cmd.base_commit,
            head_commit=head,
            tokens=outcome.usage if outcome else s.TokenUsage(),
            agent_seconds=round(outcome.seconds, 3) if outcome else 0.0,
            session_id=outcome.session_id if outcome else None,
            retry_after_s=retry_after,
            runner=self.runner.runner_id,
            workspace=str(kept) if kept else None,
            checks=list(gate or []),
            diff=diff,
        )
        await self.bus.publish(finished, f"{cmd.run_id}.finished.{self.story_id}.{self.attempt}")
        if retry_after is not None:
            return Nak(retry_after, error or "retryable")
        return ACK

    # ------------------------------------------------------------------ token budget

    async def _allowance_left(self) -> int | None:
        """What this attempt may spend of the run's token budget: the command's allowance,
        less what earlier attempts of the same command spent (a story handed back after a
        transient failure comes back with the same command), as the run record counts it."""
        granted = self.cmd.token_allowance
        if granted is None:
            return None
        with contextlib.suppress(Exception):
            got = await self.bus.get_record(self.cmd.run_id)
            story = got[0].story(self.story_id) if got else None
            if story is not None and story.allowance == granted:
                return granted - max(0, story.tokens.total - story.allowance_from)
        return granted

    # ------------------------------------------------------------------ retry budget

    async def _budget(self, now: float) -> Budget:
        """The story's retry budget; its window opened at the first failed attempt the
        conductor recorded, or ``now`` when this is the first."""
        since = None
        with contextlib.suppress(Exception):
            got = await self.bus.get_record(self.cmd.run_id)
            story = got[0].story(self.story_id) if got else None
            since = story.first_failure_at if story else None
        return Budget.of(self.cmd.limits, since or now)

    async def _retry_delay(self, now: float) -> tuple[float | None, str]:
        """How long to wait from ``now`` before the next attempt, or None when there is
        none (the story's budget is spent, or this command cannot be delivered again) with why."""
        budget = await self._budget(now)
        if self.delivery.attempt < self.runner.max_deliver:
            return budget.delay(self.attempt, now, self.settings.retry_delay_s), budget.spent(
                self.attempt, now
            )
        if not budget.allows_retry(self.attempt, now):
            return None, budget.spent(self.attempt, now)
        return None, (
            f"gave up after {self.delivery.attempt} deliveries of one command "
            f"(BARO_RUNNER_MAX_DELIVER={self.runner.max_deliver})"
        )

    # ------------------------------------------------------------------ supervision

    async def _stop_check(self) -> str | None:
        if self.delivery.shutdown.is_set():
            return "runner shutting down"
        if self.cmd.run_id in self.runner.cancelled:
            return self.runner.cancelled[self.cmd.run_id]
        now = time.monotonic()
        if now - self._last_check < STATE_CHECK_S:
            return self._stop_reason
        self._last_check = now
        with contextlib.suppress(Exception):
            self._stop_reason = await self.runner._stale(self.cmd, self.attempt)
        return self._stop_reason

    async def _sink(self, event: s.NormalizedEvent) -> None:
        if self.queue.full():
            if not isinstance(event, ESSENTIAL):
                dropped_events.inc()
                return
            await self.queue.put(event)
            return
        self.queue.put_nowait(event)

    async def _publish_events(self) -> None:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            self.seq += 1
            msg = s.AgentEventMsg(
                run_id=self.cmd.run_id,
                story_id=self.story_id,
                attempt=self.attempt,
                seq=self.seq,
                event=event,
            )
            try:
                await self.bus.publish_agent_event(msg)
            except Exception as exc:
                log.debug("agent event not published: %s", exc)

    def _count_tokens(self, usage: s.TokenUsage) -> None:
        for kind, value in (
            ("input", usage.input),
            ("cached_input", usage.cached_input),
            ("output", usage.output),
            ("reasoning", usage.reasoning),
        ):
            if value:
                tokens.labels(backend=self.cmd.backend, kind=kind, mode=self.cmd.mode).inc(value)
        if usage.cost_usd is not None:  # a backend that reports no price counts nothing
            cost.labels(backend=self.cmd.backend, mode=self.cmd.mode).inc(usage.cost_usd)


async def create(bus: Bus, settings: Settings) -> Runner:
    return Runner(bus, settings)
