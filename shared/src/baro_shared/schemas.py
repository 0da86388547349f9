"""Every message that crosses the bus, and the run record the conductor keeps in KV.

All messages are tagged msgspec Structs (``type`` is the tag) with a schema version ``v``.
Decoders ignore unknown fields, so a newer producer can add a field without breaking an
older consumer; removing or retyping a field needs a new ``v``.

The vocabulary follows DESIGN §3. Services never put dicts on the bus: anything
free-form (a tool's input, a command's output) travels as a bounded string excerpt.
"""

from __future__ import annotations

import time
from typing import Literal, TypeVar

import msgspec

SCHEMA_VERSION = 1

Mode = Literal["focused", "sequential", "parallel"]
ModeRequest = Literal["auto", "focused", "sequential", "parallel"]
IntakeStrategy = Literal["offline", "llm", "auto"]
PlanStrategy = Literal["auto", "deterministic", "llm"]
DecisionSource = Literal["offline", "llm", "user", "flag"]
ConfirmSource = Literal["intake", "user", "flag"]
Confirm = Literal["picker", "auto"]
# What a run does with the questions a vague goal raises: ask (the run waits in
# awaiting_answers) or skip them (the smallest safe reading, as before; recorded).
ClarifyPolicy = Literal["ask", "skip"]
# Where the questions and the envelope came from: the templates, or the model.
ClarifySource = Literal["offline", "llm"]
ClarifyStatus = Literal["asked", "answered", "skipped", "timed_out"]
Publish = Literal["local", "push", "pr"]
SourceKind = Literal["path", "url", "bundle"]
# What happens to a story's changes outside its write surface: strict leaves the story
# out of the integration (re-run once, then failed); warn integrates them and reports.
SurfacePolicy = Literal["strict", "warn"]
# Why the merger refused a path of a story's change, whatever the policy.
RefusalRule = Literal[
    "git_path", "symlink_escape", "gitlink", "too_large", "mass_deletion", "baro_config"
]
# A check's result: skipped means it could not judge (not installed, nothing to run, fails
# at the base as well), which is never a pass.
CheckState = Literal["passed", "failed", "skipped"]
# configured: the run base's .baro.toml [verify]; detected: a conventional check the
# repository has (pytest, npm test, cargo test, go test)
CheckOrigin = Literal["configured", "detected"]
# What made a story try again: the agent's own failure, its checks, the critic's
# critique, changes outside its write surface.
SetbackKind = Literal["agent", "checks", "critique", "surface"]
# What a repair note in a story's prompt is about.
RepairKind = Literal["conflict", "surface", "failure", "checks", "critique", "run_checks"]
# A decision of the review loop (docs/architecture.md, "The review loop").
DecisionAction = Literal[
    "approve",
    "abstain",
    "repair",
    "retry",
    "replan",
    "split",
    "rewrite",
    "give_up",
    "run_repair",
    "checkpoint",
]
# The critic's verdict on a story's attempt; abstain: it gave no usable answer (the story
# goes on, recorded).
ReviewVerdict = Literal["approve", "revise", "abstain"]
# How a story that failed twice goes on: smaller stories, one clearer story, or none.
ReplanDecision = Literal["split", "rewrite", "give_up"]

RunState = Literal[
    "submitted",
    "classifying",
    "awaiting_answers",
    "awaiting_confirmation",
    "planning",
    "running",
    "integrating",
    "delivered",
    "failed",
    "needs_attention",
    "cancelled",
]
TERMINAL_RUN_STATES: frozenset[str] = frozenset(
    {"delivered", "failed", "needs_attention", "cancelled"}
)

StoryStatus = Literal[
    "pending",
    "ready",
    "assigned",
    "running",
    "reviewing",  # its attempt succeeded; the critic is asked about it
    "replanning",  # it failed twice; the planner is asked how to go on
    "finished",
    "integrated",
    "failed",
    "blocked",
    "conflict",
    "cancelled",
    "replaced",  # replanning put other stories in its place
]
# What a provider failure means for a retry (see AgentError).
ErrorKind = Literal["transient", "rejected", "auth"]
# What a runner reports for one attempt.
AttemptStatus = Literal[
    "success", "failed", "retryable", "budget_exceeded", "timeout", "stalled", "cancelled"
]
# The exit reason of an attempt stopped at its share of the run's token budget (status
# budget_exceeded; the story's own budget is exit reason "budget_exceeded").
RUN_BUDGET_EXCEEDED = "run_budget_exceeded"


def now() -> float:
    return time.time()


# --------------------------------------------------------------------------- values


class Value(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Plain value objects nested inside messages (not tagged)."""


_N = TypeVar("_N", int, float)


def _add_known(a: _N | None, b: _N | None) -> _N | None:
    """The sum of what is known: unknown plus a figure is that figure."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _cents(dollars: float | None) -> float | None:
    """Dollars without the float noise of summing (a nano-dollar is far below any price)."""
    return None if dollars is None else round(dollars, 9)


class TokenUsage(Value, kw_only=True):
    """Tokens of one or more model calls, and what they cost.

    ``input`` counts every prompt token, cache reads and cache writes included;
    ``cached_input`` is the cache-read part of it; ``output`` counts every generated
    token, reasoning included; ``reasoning`` is that part. ``cost_usd`` is the price in
    US dollars as the backend reported it (Claude Code, OpenCode and Pi do; Codex does
    not). ``None`` means unknown, which is not the same as zero.
    """

    input: int | None = None
    cached_input: int | None = None
    output: int | None = None
    reasoning: int | None = None
    cost_usd: float | None = None

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input=_add_known(self.input, other.input),
            cached_input=_add_known(self.cached_input, other.cached_input),
            output=_add_known(self.output, other.output),
            reasoning=_add_known(self.reasoning, other.reasoning),
            cost_usd=_cents(_add_known(self.cost_usd, other.cost_usd)),
        )

    @property
    def total(self) -> int:
        return (self.input or 0) + (self.output or 0)

    def is_known(self) -> bool:
        return any(
            x is not None for x in (self.input, self.cached_input, self.output, self.reasoning)
        )


class RepoSource(Value, kw_only=True):
    """Where a run's code comes from.

    ``path``: a local repository (the user's), read only, never written except by the
    merger's delivery. ``url``: a git URL to clone. ``bundle``: an object-store name
    holding a git bundle uploaded by ``baro submit``. ``commit`` pins the base.
    """

    kind: SourceKind
    location: str
    commit: str | None = None
    ref: str | None = None


class Limits(Value, kw_only=True):
    max_stories: int | None = None
    parallelism: int | None = None
    # Token budgets (TokenUsage.total: input + output), checked as usage streams in
    # (docs/backends.md, "Token budgets"): one agent run of a story, and the whole run
    # (intake, planning and every attempt together).
    token_budget: int | None = None
    run_token_budget: int | None = None
    story_timeout_s: float = 1800.0
    stall_timeout_s: float = 600.0
    # The story's retry budget (docs/backends.md, "Failures and the retry budget"): every
    # agent run of a story counts against max_attempts, and no retry starts later than
    # retry_window_s after its first failed attempt; within it, an agent's own failure is
    # run again at most `retries` times, a transient provider failure until the budget ends.
    retries: int = 1
    max_attempts: int = 6
    retry_window_s: float = 600.0
    # the run's healing budget: how many replanning questions it may ask (one per story
    # that failed twice), each putting at most three stories in its place
    heals: int = 3


class Caps(Value, kw_only=True):
    max_stories: int = 1
    parallelism: int = 1


class Estimate(Value, kw_only=True):
    """Expected cost of a mode from this repository's past runs; None = unknown."""

    mode: Mode
    samples: int = 0
    tokens: int | None = None
    wall_s: float | None = None


class PastRun(Value, kw_only=True):
    """One finished run's figures, kept per repository in the history bucket."""

    run_id: str
    mode: Mode
    status: RunState
    stories: int
    parallelism: int = 1
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)
    wall_s: float = 0.0  # from the mode's confirmation to the final state
    finished_at: float = 0.0


class RepoHistory(Value, kw_only=True):
    """The value under one repository's key in the history bucket (most recent runs last)."""

    v: int = SCHEMA_VERSION
    runs: list[PastRun] = msgspec.field(default_factory=list)


class Question(Value, kw_only=True):
    """One clarifying question about a goal, before any agent starts (docs/intake.md)."""

    id: str  # stable for the templates ("target", "outcome", "pr", ...); q1, q2 for a model's
    text: str
    why: str = ""  # what in the goal made it a question


class GivenAnswer(Value, kw_only=True):
    question_id: str
    text: str = ""  # empty: skipped


class GoalEnvelope(Value, kw_only=True):
    """What a clarified goal means: the agreement every planner and agent works from."""

    objective: str
    constraints: list[str] = msgspec.field(default_factory=list)
    acceptance_criteria: list[str] = msgspec.field(default_factory=list)
    non_goals: list[str] = msgspec.field(default_factory=list)
    assumptions: list[str] = msgspec.field(default_factory=list)
    source: ClarifySource = "offline"


class Clarification(Value, kw_only=True):
    """A run's questions and what became of them (the run record's)."""

    status: ClarifyStatus
    questions: list[Question] = msgspec.field(default_factory=list)
    answers: list[GivenAnswer] = msgspec.field(default_factory=list)
    source: ClarifySource = "offline"
    reason: str | None = None  # why they were not asked, or why the run stopped waiting
    asked_at: float | None = None
    answered_at: float | None = None
    answered_by: str | None = None  # "terminal", "file", "api", "cli"


class IntakeDecision(Value, kw_only=True):
    mode: Mode
    confidence: float
    reason: str
    vague: bool = False
    interpretation: str | None = None
    caps: Caps = msgspec.field(default_factory=Caps)
    source: DecisionSource = "offline"
    evidence: list[str] = msgspec.field(default_factory=list)
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)
    estimates: list[Estimate] = msgspec.field(default_factory=list)
    latency_ms: float | None = None
    # What the goal leaves to a guess, asked before anything is planned (docs/intake.md)
    questions: list[Question] = msgspec.field(default_factory=list)
    question_source: ClarifySource | None = None
    # The clarified goal (after answers, or the model's ``ready``)
    envelope: GoalEnvelope | None = None
    # The goal was a question about baro itself, and this is the model's answer to it
    tool_answer: str | None = None
    round: int = 1  # 2: decided again on the clarified goal


class Story(Value, kw_only=True):
    id: str
    title: str
    description: str = ""
    depends_on: list[str] = msgspec.field(default_factory=list)
    write_surface: list[str] = msgspec.field(default_factory=list)
    acceptance: list[str] = msgspec.field(default_factory=list)
    # This story's agent CLI and model, when not the run's (a given plan, or the tiers).
    backend: str | None = None
    model: str | None = None
    # How big the story is compared with the others (1 when not said): the scheduler starts
    # the longest remaining chains of work first.
    effort: float | None = None
    # The story may end without changing a file and still be done: the planner's story
    # that registers new units, when the application needs nothing registered. Set only by
    # baro's own planner (a plan given as data cannot carry it).
    may_change_nothing: bool = False


StoryKind = Literal["docs", "tests", "small", "default"]


class ModelTier(Value, kw_only=True):
    """Which model (and optionally which backend) runs stories of one kind: ``docs`` and
    ``tests`` (every file of the story's surface is one), ``small`` (one file), ``default``."""

    kind: StoryKind
    model: str
    backend: str | None = None


class DesignNote(Value, kw_only=True):
    """What parallel stories share, pinned before they start (names, interfaces, layout,
    conventions), and where it came from: a model's answer or the planner's own summary."""

    text: str
    source: Literal["model", "offline"]
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)
    notes: list[str] = msgspec.field(default_factory=list)


class Delivery(Value, kw_only=True):
    """What one integrated story put on the integration head."""

    story_id: str
    title: str
    commit: str
    files: list[str] = msgspec.field(default_factory=list)


class FollowUp(Value, kw_only=True):
    """What a ``--continue`` run builds on, as the submitter saw its branch: the goals of
    the earlier runs that made or moved it (oldest first) and the branch's commits that
    the submitter's checkout does not have (newest first, ``<short hash> <subject>``)."""

    goals: list[str] = msgspec.field(default_factory=list)
    commits: list[str] = msgspec.field(default_factory=list)
    more_commits: int = 0  # left out of ``commits``


class CheckResult(Value, kw_only=True):
    """One check run on a story's result (its gate) or on the integrated result (the run
    gate). ``output`` is the tail of its stdout and stderr; ``note`` says why it was
    skipped, or what else is worth knowing."""

    command: str
    origin: CheckOrigin = "configured"
    result: CheckState
    exit_code: int | None = None  # None: it did not run, or timed out
    seconds: float = 0.0
    output: str = ""
    note: str | None = None


class RepairNote(Value, kw_only=True):
    """What went wrong before, told to the agent that tries again (one section of its
    prompt per note)."""

    kind: RepairKind
    text: str


class Resume(Value, kw_only=True):
    """A repair turn goes on from an attempt's result instead of the story's base."""

    attempt: int
    bundle: str  # object-store name: git bundle base..head of that attempt
    head: str


class Setback(Value, kw_only=True):
    """One attempt of a story that did not count: what happened, and its signature (two
    failures with the same signature are the same failure)."""

    attempt: int
    kind: SetbackKind
    signature: str
    summary: str


class Review(Value, kw_only=True):
    """The critic's verdict on one attempt of a story."""

    attempt: int
    verdict: ReviewVerdict
    reasons: list[str] = msgspec.field(default_factory=list)
    note: str | None = None  # why it abstained, or that its first answer needed a repair
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)


class Decision(Value, kw_only=True):
    """A decision the conductor took in the review loop (kept in the record, for the
    summary, the API and the pull request)."""

    at: float
    action: DecisionAction
    reason: str
    story_id: str | None = None
    attempt: int | None = None
    stories: list[str] = msgspec.field(default_factory=list)  # stories it added


class Checkpoint(Value, kw_only=True):
    """A partial result: some of the run's work was integrated, not all of it, or its run
    checks failed after the repair story (docs/merging.md, "Partial results"). Decided by
    the conductor before delivery; the merger delivers it as a branch marked partial
    (``baro/<slug>-checkpoint``, its top commit saying what is missing), never publishes it,
    and with ``deliver`` false (``--no-checkpoint``) delivers no branch at all."""

    missing: list[str]  # what the result lacks, one line each: "S2 failed: ..."
    integrated: list[str] = msgspec.field(default_factory=list)  # the stories it holds
    deliver: bool = True


class Refusal(Value, kw_only=True):
    """A path of a story's change left out by a guard: by the merger (left out of the
    integration, kept in the story's attempt ref) or, for a file above the size limit, by
    the runner before bundling (never bundled, so nowhere but the attempt's workspace)."""

    path: str
    rule: RefusalRule
    reason: str


class RunOwner(Value, kw_only=True):
    """The process that drives a local run (``baro run`` on its embedded server).

    A run without an owner belongs to its cluster: whichever services run on its NATS
    drive it. A run whose owner is gone (same host, the process no longer runs) is
    interrupted: services record what arrives for it but start nothing until
    ``baro resume`` gives it a new owner (docs/reliability.md).
    """

    pid: int
    host: str
    started: int | None = None  # the process's start time, in clock ticks since boot
    boot: str | None = None  # the kernel's boot id: pids and start times restart with it
    command: str = "baro"


class Interruption(Value, kw_only=True):
    """Why and since when a run is parked."""

    at: float
    reason: str
    owner: RunOwner | None = None


class Totals(Value, kw_only=True):
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)
    wall_s: float = 0.0
    agent_s: float = 0.0
    speedup: float | None = None
    stories: int = 0
    stories_integrated: int = 0


# --------------------------------------------------------------------------- bus messages


class Message(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every bus message: tagged by class, versioned, stamped."""

    v: int = SCHEMA_VERSION
    run_id: str
    ts: float = msgspec.field(default_factory=now)


# ---- events: baro.evt.<run_id>.<topic>  (BARO_EVT)


class ChosenSetting(Value, kw_only=True):
    """One of a run's defaults as the submitter resolved it (baro_shared.defaults)."""

    name: str
    value: str | None  # None: left to later (the mode, the agent CLI)
    source: Literal["flag", "environment", "repository", "built-in"]
    where: str  # the flag, the BARO_* variable, the .baro.toml table, or "built-in"


class RunSubmitted(Message, tag="run.submitted", kw_only=True):
    goal: str
    repo: RepoSource
    mode_request: ModeRequest = "auto"
    intake: IntakeStrategy = "offline"
    backend: str = "claude"
    model: str | None = None
    limits: Limits = msgspec.field(default_factory=Limits)
    confirm: Confirm = "auto"
    publish: Publish = "local"
    slug: str | None = None
    continue_branch: str | None = None
    follow_up: FollowUp | None = None  # with continue_branch: what the branch already holds
    # Only read by the scripted test/demo agent: its JSON script, inline.
    agent_script: str | None = None
    submitted_by: str | None = None
    planner: PlanStrategy = "auto"
    # A plan given by the submitter (``baro run --plan-file``): the conductor takes it as
    # the proposal instead of asking the planner; enforcement still applies.
    plan: list[Story] | None = None
    # None: .baro.toml's [surface] policy, else strict for parallel runs, warn otherwise.
    surface: SurfacePolicy | None = None
    # The process driving the run (``baro run`` on its embedded server); None: the cluster.
    owner: RunOwner | None = None
    # --quick: no design note before parallel stories start
    quick: bool = False
    # story kind -> model (``--model-tiers``); wins over the repository's .baro.toml [models]
    model_tiers: list[ModelTier] = msgspec.field(default_factory=list)
    # how ``baro run`` chose its defaults (flag > environment > .baro.toml > built-in)
    defaults: list[ChosenSetting] = msgspec.field(default_factory=list)
    # ``--notify``: a webhook for this run (over .baro.toml [notify] webhook), and a desktop
    # notification (local runs)
    notify_webhook: str | None = None
    notify_desktop: bool = False
    # the critic reviews stories with acceptance criteria; None: on, except for the
    # scripted backend (whose tests ask for it)
    review: bool | None = None

    # stories that failed twice are replanned; None: on (the scripted backend answers its
    # replanning question without tools, like the real CLIs)
    replan: bool | None = None
    # a vague goal's questions: asked (the run waits for answers) or skipped (recorded)
    clarify: ClarifyPolicy = "skip"
    # a partial result is delivered as a checkpoint branch (False: no branch; its work
    # stays at refs/baro/<run>/integration)
    checkpoint: bool = True

    @property
    def review_on(self) -> bool:
        """``--review``: by default on, except for the scripted backend (its tests ask)."""
        return self.review if self.review is not None else self.backend != "scripted"

    @property
    def heals(self) -> int:
        """The run's healing budget: ``Limits.heals``, or none when replanning is off."""
        return self.limits.heals if self.replan is not False else 0


class IntakeDecided(Message, tag="run.intake_decided", kw_only=True):
    decision: IntakeDecision


class QuestionsAsked(Message, tag="run.questions_asked", kw_only=True):
    """The run waits in awaiting_answers for these (``AnswersGiven`` continues it)."""

    questions: list[Question]
    source: ClarifySource = "offline"


class AnswersGiven(Message, tag="run.answers_given", kw_only=True):
    answers: list[GivenAnswer] = msgspec.field(default_factory=list)
    by: str = "api"  # terminal, file, api, cli


class ModeConfirmed(Message, tag="run.mode_confirmed", kw_only=True):
    mode: Mode
    source: ConfirmSource
    decided_by: DecisionSource | None = None  # what the run record's mode_source becomes


class CancelRequested(Message, tag="run.cancel_requested", kw_only=True):
    reason: str = "cancelled by user"
    unanswered: bool = False  # its questions went unanswered past the timeout


class RunInterrupted(Message, tag="run.interrupted", kw_only=True):
    """The run's owning process is gone: the run is parked until resumed or cancelled."""

    reason: str
    owner: RunOwner | None = None


class RunResumed(Message, tag="run.resumed", kw_only=True):
    """``baro resume``: drive a parked run again, owned by ``owner`` (None: the cluster)."""

    owner: RunOwner | None = None


class RunPrepared(Message, tag="run.prepared", kw_only=True):
    base_commit: str
    base_ref: str | None = None
    file_list: str | None = None  # object-store name of the repository's file list
    file_count: int = 0
    model_tiers: list[ModelTier] = msgspec.field(default_factory=list)  # .baro.toml [models]
    # who the delivered commits are by ("Name <email>") and whether they are signed
    author: str | None = None
    signed: bool = False
    notes: list[str] = msgspec.field(default_factory=list)  # e.g. why signing is off
    # the run gate's checks the base has (configured and detected): the conductor runs
    # the gate before delivering only when there are some
    run_checks: list[str] = msgspec.field(default_factory=list)


class RunPrepareFailed(Message, tag="run.prepare_failed", kw_only=True):
    error: str


class PlanProposed(Message, tag="run.plan_proposed", kw_only=True):
    stories: list[Story]
    planner: Literal["deterministic", "llm", "single", "given"] = "deterministic"
    notes: list[str] = msgspec.field(default_factory=list)
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)  # the planning questions
    design: DesignNote | None = None  # its tokens are not in ``tokens``


class PlanFailed(Message, tag="run.plan_failed", kw_only=True):
    error: str
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)  # spent before failing


class PlanAccepted(Message, tag="run.plan_accepted", kw_only=True):
    mode: Mode
    stories: list[Story]
    enforcement: list[str] = msgspec.field(default_factory=list)
    caps: Caps = msgspec.field(default_factory=Caps)
    design: DesignNote | None = None


class StoryStarted(Message, tag="story.started", kw_only=True):
    story_id: str
    attempt: int
    runner: str
    workspace: str | None = None
    base_commit: str | None = None
    backend: str | None = None  # the agent CLI and model this attempt runs with
    model: str | None = None


class StoryAgentEnded(Message, tag="story.agent_ended", kw_only=True):
    """The attempt's agent has exited and nothing more will run in its fence (the story
    has no checks to run): what is left is saving its result, and StoryFinished follows.
    The attempt no longer holds one of the run's parallel agents."""

    story_id: str
    attempt: int
    runner: str


class StoryFinished(Message, tag="story.finished", kw_only=True):
    story_id: str
    attempt: int
    status: AttemptStatus
    exit_reason: str = ""
    error: str | None = None
    changed_files: list[str] = msgspec.field(default_factory=list)
    surface_violations: list[str] = msgspec.field(default_factory=list)
    # left out of the result by the runner: files above the size limit (not even hashed),
    # and .git-like paths git refuses to record
    refused: list[Refusal] = msgspec.field(default_factory=list)
    bundle: str | None = None  # object-store name: git bundle base..head
    base_commit: str | None = None
    head_commit: str | None = None
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)
    agent_seconds: float = 0.0
    session_id: str | None = None
    retry_after_s: float | None = None
    runner: str | None = None
    workspace: str | None = None  # the attempt's workspace, when kept for inspection
    checks: list[CheckResult] = msgspec.field(default_factory=list)  # the story's gate
    diff: str | None = None  # the change (bounded, redacted), when the critic reviews it


class StoryUpdated(Message, tag="story.updated", kw_only=True):
    """Conductor's record of a story's status change (for watchers and replay)."""

    story_id: str
    status: StoryStatus
    attempt: int = 0
    reason: str | None = None


class StoryIntegrated(Message, tag="story.integrated", kw_only=True):
    story_id: str
    attempt: int
    integration_commit: str  # the story's own commit (or the head it found nothing to add to)
    # the integration head after the whole batch the story was integrated in (None: the
    # story's commit) and the bundle that carries it
    integration_head: str | None = None
    integration_bundle: str | None = None
    dropped_artifacts: list[str] = msgspec.field(default_factory=list)
    story_ref: str | None = None
    refused: list[Refusal] = msgspec.field(default_factory=list)  # left out, by a guard
    # outside the story's write surface and integrated anyway (policy warn)
    surface_violations: list[str] = msgspec.field(default_factory=list)
    surface_policy: SurfacePolicy | None = None
    nothing_left: bool = False  # every change of the story was dropped or refused
    files: list[str] = msgspec.field(default_factory=list)  # what the commit changed


class StoryRejected(Message, tag="story.rejected", kw_only=True):
    """Policy strict: the attempt changed files outside its write surface, so none of it
    was integrated; it stays at ``story_ref``."""

    story_id: str
    attempt: int
    surface_violations: list[str]
    refused: list[Refusal] = msgspec.field(default_factory=list)
    dropped_artifacts: list[str] = msgspec.field(default_factory=list)
    surface_policy: SurfacePolicy = "strict"
    story_ref: str | None = None
    # the integration head after the batch, for the re-run (see StoryIntegrated)
    integration_head: str | None = None
    integration_bundle: str | None = None


class MergeConflict(Message, tag="story.merge_conflict", kw_only=True):
    story_id: str
    attempt: int
    paths: list[str]
    story_ref: str | None = None
    # the integration head after the batch, for the re-run (see StoryIntegrated)
    integration_head: str | None = None
    integration_bundle: str | None = None


class IntegrationFailed(Message, tag="story.integration_failed", kw_only=True):
    story_id: str
    attempt: int
    error: str


class StoryReviewed(Message, tag="story.reviewed", kw_only=True):
    """The critic's answer on one attempt of a story (the planner asked it)."""

    story_id: str
    attempt: int
    verdict: ReviewVerdict
    reasons: list[str] = msgspec.field(default_factory=list)
    note: str | None = None
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)


class StoryReplanned(Message, tag="story.replanned", kw_only=True):
    """The planner's answer on how a story that failed twice goes on."""

    story_id: str
    round: int  # the run's replanning question it answers (RunRecord.heals when asked)
    decision: ReplanDecision
    reason: str
    stories: list[Story] = msgspec.field(default_factory=list)
    note: str | None = None
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)


class RunGateChecked(Message, tag="run.gate_checked", kw_only=True):
    """The run gate's results on the integrated result ``head``."""

    round: int
    head: str
    checks: list[CheckResult] = msgspec.field(default_factory=list)


class RunDecision(Message, tag="run.decision", kw_only=True):
    """The conductor decided something in the review loop: a repair turn, a retry with
    the failure, a replanning question and its outcome, the run gate's repair story, a
    checkpoint."""

    decision: Decision


class RunDelivered(Message, tag="run.delivered", kw_only=True):
    branch: str | None
    base: str
    head: str
    commits: int = 0
    files_changed: list[str] = msgspec.field(default_factory=list)
    diffstat: str = ""
    dropped_artifacts: list[str] = msgspec.field(default_factory=list)
    pr_url: str | None = None
    published: Literal["local", "pushed", "pr", "object_store"] = "local"
    publish_note: str | None = None
    result_bundle: str | None = None
    # the run gate's verdict (None: there was no check); skipped: no check could judge,
    # which is never a pass
    verify: CheckState | None = None
    verify_output: str | None = None  # the failed checks' output
    checks: list[CheckResult] = msgspec.field(default_factory=list)  # the run gate, each check
    # the branch is a checkpoint: a partial result (DeliverRun.checkpoint), not published
    partial: bool = False


class DeliveryFailed(Message, tag="run.delivery_failed", kw_only=True):
    error: str
    needs_attention: bool = True


class CommandDeadLettered(Message, tag="run.dead_lettered", kw_only=True):
    """The bus gave up delivering a command (max deliveries): the work it asked for failed."""

    command: str  # the command's type tag, e.g. "cmd.run_story"
    deliveries: int
    reason: str
    story_id: str | None = None
    attempt: int | None = None
    integrations: dict[str, int] = msgspec.field(default_factory=dict)  # story id: attempt


class RunFinished(Message, tag="run.finished", kw_only=True):
    status: RunState
    reason: str | None = None
    totals: Totals = msgspec.field(default_factory=Totals)


# ---- commands: baro.cmd.<service>  (BARO_CMD, work queue)


class ClassifyGoal(Message, tag="cmd.classify", kw_only=True):
    goal: str
    strategy: IntakeStrategy = "offline"
    backend: str | None = None
    model: str | None = None
    repo_key: str | None = None  # identifies the repository for past-run estimates
    agent_script: str | None = None  # scripted test/demo backend only
    limits: Limits = msgspec.field(default_factory=Limits)  # the run's retry budget
    # 1: the goal as given (questions may come back); 2: decided again with the answers
    round: int = 1
    ask_model: bool = False  # the run will ask its questions: a model may write them
    questions: list[Question] = msgspec.field(default_factory=list)
    answers: list[GivenAnswer] = msgspec.field(default_factory=list)


class PrepareRun(Message, tag="cmd.prepare", kw_only=True):
    repo: RepoSource
    continue_branch: str | None = None


class PlanGoal(Message, tag="cmd.plan", kw_only=True):
    goal: str
    mode: Mode
    caps: Caps
    interpretation: str | None = None
    file_list: str | None = None
    backend: str | None = None
    model: str | None = None
    strategy: Literal["auto", "deterministic", "llm"] = "auto"
    agent_script: str | None = None  # scripted test/demo backend only
    design: bool = False  # pin a design note for stories that run side by side
    plan: list[Story] | None = None  # the submitter's own plan: not planned again
    limits: Limits = msgspec.field(default_factory=Limits)  # the run's retry budget
    envelope: GoalEnvelope | None = None  # the clarified goal (objective, criteria, ...)


class ReviewStory(Message, tag="cmd.review_story", kw_only=True):
    """Ask the critic about one attempt of a story: its change and its checks."""

    story: Story
    attempt: int
    goal: str
    diff: str = ""
    checks: list[CheckResult] = msgspec.field(default_factory=list)
    backend: str = "claude"
    model: str | None = None
    agent_script: str | None = None
    resumes: int = 0


class ReplanStory(Message, tag="cmd.replan_story", kw_only=True):
    """Ask the planner how a story that failed twice goes on."""

    story: Story
    round: int
    goal: str
    mode: Mode
    failures: list[str]  # what went wrong, one entry per attempt that did not count
    room: int  # how many stories may take its place (1: a rewrite or nothing)
    backend: str = "claude"
    model: str | None = None
    agent_script: str | None = None


class RunStory(Message, tag="cmd.run_story", kw_only=True):
    story: Story
    attempt: int
    goal: str
    mode: Mode
    source: RepoSource
    base_commit: str
    base_bundle: str | None = None  # integration head bundle when base_commit is past the source
    # The run's base: its .baro.toml configures the story (never one a story wrote).
    run_base: str | None = None
    backend: str = "claude"
    model: str | None = None
    limits: Limits = msgspec.field(default_factory=Limits)
    # What went wrong before, one prompt section each (a conflict, changes outside the
    # write surface, a failure, failing checks, a critique). ``conflict_note`` and
    # ``surface_note`` are what older conductors sent; they are still shown.
    repair: list[RepairNote] = msgspec.field(default_factory=list)
    resume: Resume | None = None  # a repair turn: start from that attempt's result
    review: bool = False  # the critic reviews the result: send the change's diff with it
    conflict_note: str | None = None
    surface_note: str | None = None
    agent_script: str | None = None
    resumes: int = 0  # the run's resume count when sent: a runner skips older commands
    design_note: str | None = None  # shared by every story of the run
    delivered: list[Delivery] = msgspec.field(default_factory=list)  # by its dependencies
    # integrated by other stories, near this story's surface, since its previous attempt began
    nearby: list[Delivery] = msgspec.field(default_factory=list)
    # With a run token budget: the most this attempt may spend of it (the runner stops its
    # agent past it). A redelivery of this command spends from the same allowance.
    token_allowance: int | None = None
    # A vague goal's smallest safe reading (the intake's): what the agent is to do of it
    interpretation: str | None = None
    follow_up: FollowUp | None = None  # a --continue run: the earlier goals and commits
    envelope: GoalEnvelope | None = None  # the clarified goal, when questions were answered


class StoryToIntegrate(Value, kw_only=True):
    """One finished attempt of an ``IntegrateStories`` batch."""

    story: Story
    attempt: int
    bundle: str
    story_base: str
    head_commit: str
    agent: str | None = None  # the story's agent CLI, named in the commit's co-author trailer


class IntegrateStories(Message, tag="cmd.integrate_stories", kw_only=True):
    """Integrate finished stories one after another, in this order, in one pass of the
    run's integration repository; the merger answers for each story (docs/merging.md)."""

    stories: list[StoryToIntegrate]
    goal: str
    mode: Mode | None = None
    surface: SurfacePolicy | None = None  # the run's own choice; see RunSubmitted.surface
    # the head's bundle is wanted for stories started after the batch; False for a run's
    # last batch (the merger still makes it when a story of the batch is to be re-run)
    head_bundle: bool = True


class DeliverRun(Message, tag="cmd.deliver", kw_only=True):
    goal: str
    slug: str
    repo: RepoSource
    publish: Publish
    mode: Mode
    continue_branch: str | None = None
    summary_markdown: str = ""
    gate: list[CheckResult] | None = None  # the run gate's last results (None: no gate ran)
    checkpoint: Checkpoint | None = None  # the result is partial (None: it is complete)


class GateRun(Message, tag="cmd.gate", kw_only=True):
    """Run the run gate: the run base's run checks on the integrated result."""

    head: str
    round: int
    # the run's source: the user's repository, when it is on this machine, is hidden from
    # the checks (they run code the agents wrote)
    source: RepoSource | None = None


class ArchiveAttempt(Message, tag="cmd.archive", kw_only=True):
    """Keep a failed or superseded attempt's commits reachable (refs/baro/<run>/<story>/<attempt>)."""

    story_id: str
    attempt: int
    bundle: str


class NotifyRun(Message, tag="cmd.notify", kw_only=True):
    """Tell people a run reached a state they act on (docs/configuration.md, Notifications).

    Sent by the conductor when the run enters the state; the merger reads the run base's
    .baro.toml [notify] and posts (the webhook) and shows (the desktop) it."""

    state: RunState
    goal: str
    reason: str | None = None
    branch: str | None = None
    pr_url: str | None = None
    totals: Totals = msgspec.field(default_factory=Totals)
    repository: str | None = None  # a local run's repository path, or the source URL
    webhook: str | None = None  # the run's own (--notify URL)
    desktop: bool = False  # the run asked for a desktop notification (--notify desktop)
    local: bool = False  # a run owned by a `baro run` on this machine


class CleanupRun(Message, tag="cmd.cleanup", kw_only=True):
    keep_refs: bool = True


Event = (
    RunSubmitted
    | IntakeDecided
    | QuestionsAsked
    | AnswersGiven
    | ModeConfirmed
    | CancelRequested
    | RunPrepared
    | RunPrepareFailed
    | PlanProposed
    | PlanFailed
    | PlanAccepted
    | StoryStarted
    | StoryAgentEnded
    | StoryFinished
    | StoryUpdated
    | StoryIntegrated
    | StoryRejected
    | MergeConflict
    | IntegrationFailed
    | StoryReviewed
    | StoryReplanned
    | RunGateChecked
    | RunDecision
    | RunDelivered
    | DeliveryFailed
    | CommandDeadLettered
    | RunInterrupted
    | RunResumed
    | RunFinished
)
Command = (
    ClassifyGoal
    | PrepareRun
    | PlanGoal
    | RunStory
    | ReviewStory
    | ReplanStory
    | GateRun
    | IntegrateStories
    | ArchiveAttempt
    | DeliverRun
    | CleanupRun
    | NotifyRun
)
BusMessage = Event | Command


# ---- normalized agent events: baro.agent.<run_id>.<story_id>  (BARO_AGENT)


class AgentEvent(msgspec.Struct, tag_field="kind", kw_only=True, omit_defaults=True):
    """One normalized event from any backend's wire stream (DESIGN §3)."""


class SessionStarted(AgentEvent, tag="session", kw_only=True):
    session_id: str
    model: str | None = None


class AssistantText(AgentEvent, tag="text", kw_only=True):
    text: str


class Thinking(AgentEvent, tag="thinking", kw_only=True):
    text: str


class ToolStarted(AgentEvent, tag="tool_started", kw_only=True):
    call_id: str | None
    name: str
    input: str = ""  # JSON text, excerpt


class ToolFinished(AgentEvent, tag="tool_finished", kw_only=True):
    call_id: str | None
    name: str | None = None
    ok: bool = True
    output: str = ""  # excerpt


class FileChanged(AgentEvent, tag="file_changed", kw_only=True):
    path: str
    change: Literal["add", "update", "delete", "unknown"] = "unknown"


class CommandRun(AgentEvent, tag="command", kw_only=True):
    command: str
    exit_code: int | None = None
    output: str = ""  # excerpt


class Usage(AgentEvent, tag="usage", kw_only=True):
    """Counted once per model call (or once per backend-reported total)."""

    usage: TokenUsage
    model: str | None = None
    cost_usd: float | None = None


class AgentError(AgentEvent, tag="error", kw_only=True):
    """A failure the agent reported. ``category`` says what a retry could do
    (docs/backends.md): ``transient`` (rate limit, overload, 5xx, a cut stream, no
    network) may pass later, ``rejected`` (400, 404, a model that does not exist) and
    ``auth`` (401, 403, no or a bad key) fail the same way again; None is the agent's own
    failure. ``retryable`` is ``category == "transient"``."""

    message: str
    retryable: bool = False
    status: int | None = None
    category: ErrorKind | None = None


class AgentFinished(AgentEvent, tag="finished", kw_only=True):
    ok: bool
    error: str | None = None
    result: str | None = None


NormalizedEvent = (
    SessionStarted
    | AssistantText
    | Thinking
    | ToolStarted
    | ToolFinished
    | FileChanged
    | CommandRun
    | Usage
    | AgentError
    | AgentFinished
)


class AgentEventMsg(
    msgspec.Struct, tag="agent.event", tag_field="type", kw_only=True, omit_defaults=True
):
    v: int = SCHEMA_VERSION
    run_id: str
    story_id: str
    attempt: int
    seq: int
    ts: float = msgspec.field(default_factory=now)
    event: NormalizedEvent


# --------------------------------------------------------------------------- run record (KV)


class StoryResult(Value, kw_only=True):
    attempt: int
    status: AttemptStatus
    bundle: str | None = None
    base_commit: str | None = None
    head_commit: str | None = None
    changed_files: list[str] = msgspec.field(default_factory=list)
    surface_violations: list[str] = msgspec.field(default_factory=list)
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)
    agent_seconds: float = 0.0
    exit_reason: str = ""
    error: str | None = None
    checks: list[CheckResult] = msgspec.field(default_factory=list)


class StoryState(Value, kw_only=True):
    story: Story
    status: StoryStatus = "pending"
    attempt: int = 0  # highest attempt number seen or dispatched
    dispatches: int = 0
    conflicts: int = 0
    runner: str | None = None
    # its latest attempt's agent has exited and only its result is being saved: it no
    # longer counts against the run's parallelism (StoryAgentEnded)
    agent_ended: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    result: StoryResult | None = None
    tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)  # all attempts
    agent_seconds: float = 0.0  # all attempts
    integration_commit: str | None = None
    dropped_artifacts: list[str] = msgspec.field(default_factory=list)
    # what the merger judged, over every attempt: paths refused by a guard, and paths
    # changed outside the write surface (integrated under warn, rejected under strict)
    refused: list[Refusal] = msgspec.field(default_factory=list)
    surface_violations: list[str] = msgspec.field(default_factory=list)
    surface_policy: SurfacePolicy | None = None
    rejections: int = 0  # attempts left out for changes outside the write surface
    nothing_left: bool = False  # integrated, but every change it made was dropped or refused
    story_ref: str | None = None  # where the attempt judged last is kept
    refs: list[str] = msgspec.field(default_factory=list)
    counted_attempts: list[str] = msgspec.field(default_factory=list)
    reason: str | None = None
    first_failure_at: float | None = None  # when the retry budget's time window opened
    # With a run token budget: what the latest dispatch may spend of it, counted from the
    # story's tokens when it was granted (allowance_from)
    allowance: int | None = None
    allowance_from: int = 0
    conflict_paths: list[str] = msgspec.field(default_factory=list)
    backend: str | None = None  # what its latest attempt was dispatched to
    model: str | None = None
    delivered: Delivery | None = None  # once integrated
    nearby: list[Delivery] = msgspec.field(default_factory=list)  # told on its next attempt
    setbacks: list[Setback] = msgspec.field(default_factory=list)  # attempts that did not count
    reviews: list[Review] = msgspec.field(default_factory=list)  # the critic's verdicts
    failure: str | None = None  # why it went to replanning


class OutboxItem(Value, kw_only=True):
    """A message decided by a transition but not yet confirmed published."""

    msg_id: str
    message: BusMessage


class RunRecord(Value, kw_only=True):
    v: int = SCHEMA_VERSION
    run_id: str
    request: RunSubmitted
    state: RunState = "submitted"
    created_at: float = msgspec.field(default_factory=now)
    updated_at: float = msgspec.field(default_factory=now)
    finished_at: float | None = None
    decision: IntakeDecision | None = None
    clarification: Clarification | None = None  # a vague goal's questions and answers
    envelope: GoalEnvelope | None = None  # the clarified goal
    mode: Mode | None = None
    mode_source: DecisionSource | None = None
    confirmed_at: float | None = None
    base_commit: str | None = None
    file_list: str | None = None
    prepared: bool = False
    caps: Caps | None = None
    plan_tokens: TokenUsage = msgspec.field(default_factory=TokenUsage)  # planning + design
    design: DesignNote | None = None
    model_tiers: list[ModelTier] = msgspec.field(default_factory=list)  # .baro.toml [models]
    enforcement: list[str] = msgspec.field(default_factory=list)
    stories: list[StoryState] = msgspec.field(default_factory=list)
    integration_head: str | None = None
    # the newest bundle the merger wrote (base..head) and the head it holds: the
    # integration head, unless the batches since wrote none (nothing was to start after
    # them: baro_conductor.core._starts_after), which integrated ``unbundled``
    integration_bundle: str | None = None
    bundle_head: str | None = None
    unbundled: list[str] = msgspec.field(default_factory=list)
    # the stories whose integration is in flight (one IntegrateStories batch), in its order
    integrating_batch: list[str] = msgspec.field(default_factory=list)
    delivered: RunDelivered | None = None
    reason: str | None = None
    totals: Totals = msgspec.field(default_factory=Totals)
    # the run's token budget stopped a story or kept one from starting
    budget_reached: bool = False
    outbox: list[OutboxItem] = msgspec.field(default_factory=list)
    seq: int = 0  # transitions applied; used to name outbox messages
    owner: RunOwner | None = None  # who drives the run now (the request's, until a resume)
    interrupted: Interruption | None = None  # parked: its owner died before a final state
    resumes: int = 0  # how often it was resumed; part of the ids of what it sends after
    decisions: list[Decision] = msgspec.field(default_factory=list)  # the review loop's
    heals: int = 0  # replanning questions asked (against Limits.heals)
    run_checks: list[str] = msgspec.field(default_factory=list)  # see RunPrepared
    gate_rounds: int = 0  # run gates asked for (the second one follows the run's repair story)
    gating: bool = False  # a run gate is in flight
    gate: list[CheckResult] | None = None  # its last results
    gate_head: str | None = None  # the integrated result they judged
    run_repair: str | None = None  # the id of the story that repairs the run's checks
    checkpoint: Checkpoint | None = None  # the delivered result is partial: what it lacks

    def story(self, story_id: str) -> StoryState | None:
        for s in self.stories:
            if s.story.id == story_id:
                return s
        return None


# --------------------------------------------------------------------------- codecs

_encoder = msgspec.json.Encoder()
event_decoder = msgspec.json.Decoder(Event)
command_decoder = msgspec.json.Decoder(Command)
bus_decoder = msgspec.json.Decoder(BusMessage)
agent_event_decoder = msgspec.json.Decoder(AgentEventMsg)
record_decoder = msgspec.json.Decoder(RunRecord)
history_decoder = msgspec.json.Decoder(RepoHistory)


def encode(obj: msgspec.Struct) -> bytes:
    return _encoder.encode(obj)


def to_builtins(obj: msgspec.Struct) -> object:
    return msgspec.to_builtins(obj)


class PoisonRecord(msgspec.Struct, tag="dlq.poison", tag_field="type", kw_only=True):
    """A message a service could not decode (or a handler terminated), kept for inspection."""

    v: int = SCHEMA_VERSION
    service: str
    subject: str
    reason: str
    payload: str
    stream_seq: int = 0
    ts: float = msgspec.field(default_factory=now)
