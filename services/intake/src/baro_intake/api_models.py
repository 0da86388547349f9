"""The HTTP API's request and response bodies (pydantic: they are the published OpenAPI).

Requests forbid unknown fields, so a misspelled option is a 422 naming it instead of a
silently ignored setting. Timestamps are Unix seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from baro_shared import inputs, sources
from baro_shared import schemas as s
from baro_shared.backends import MODEL_NAME_PATTERN
from baro_shared.runids import RUN_ID_PATTERN, is_run_id

# the bus vocabulary is the API's too (baro_shared.schemas is the single source)
Mode = s.Mode
ModeRequest = s.ModeRequest
Backend = Literal["claude", "codex", "opencode", "pi", "scripted"]
RunState = s.RunState
StoryStatus = s.StoryStatus
DecisionSource = s.DecisionSource
SurfacePolicy = s.SurfacePolicy
RefusalRule = s.RefusalRule

GOAL_MAX_BYTES = inputs.GOAL_MAX_BYTES
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,47}$"
_SLUG = re.compile(SLUG_PATTERN)


def _checked(pattern: str, check: Callable[[str], str], **field: Any) -> Any:
    """A string field whose JSON schema states ``pattern`` while ``check`` (which accepts
    exactly what the pattern does) validates it, so that a rejection says what to do."""
    return Annotated[
        str, Field(json_schema_extra={"pattern": pattern}, **field), AfterValidator(check)
    ]


def _goal(text: str) -> str:
    return inputs.check_goal(text)  # an InputProblem is a ValueError: a 422 naming it


def _model(text: str) -> str:
    return inputs.check_model(text)


def _prose(text: str) -> str:
    return inputs.check_prose("the text", text)


def _slug(text: str) -> str:
    if not _SLUG.match(text):
        raise ValueError("a slug is lowercase letters, digits and '-', at most 48 characters")
    return text


def _run_id(text: str) -> str:
    if not is_run_id(text):
        raise ValueError("a run id is letters, digits, '-' and '_' (as POST /v1/runs gave it)")
    return text


GitUrl = _checked(sources.URL_PATTERN, sources.check_git_url, max_length=sources.URL_MAX)
ObjectName = _checked(
    sources.OBJECT_NAME_PATTERN, sources.check_object_name, max_length=sources.OBJECT_NAME_MAX
)
RefName = _checked(sources.REF_PATTERN, sources.check_ref, max_length=sources.REF_MAX)
CommitId = _checked(sources.COMMIT_PATTERN, sources.check_commit, max_length=64)
# prose: no control characters but tab and newline; a goal has a visible character too.
# maxLength counts characters: the limit itself is GOAL_MAX_BYTES of UTF-8, checked by _goal.
_PROSE = r"[^\x00-\x08\x0b-\x1f\x7f-\x9f]"
PROSE_PATTERN = rf"^{_PROSE}*$"
GOAL_PATTERN = rf"^{_PROSE}*[^\x00-\x20\x7f-\x9f]{_PROSE}*$"
Goal = _checked(
    GOAL_PATTERN,
    _goal,
    min_length=1,
    max_length=GOAL_MAX_BYTES,
    description=f"what to change, at most {GOAL_MAX_BYTES} bytes of UTF-8",
)
ModelName = _checked(MODEL_NAME_PATTERN, _model, min_length=1, max_length=128)
Slug = _checked(SLUG_PATTERN, _slug, max_length=48)
CancelReason = _checked(PROSE_PATTERN, _prose, max_length=500)
AnswerText = _checked(PROSE_PATTERN, _prose, max_length=2000)
QUESTION_ID_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
QuestionId = Annotated[str, Field(pattern=QUESTION_ID_PATTERN)]


class Request(BaseModel):
    # strict: `true` is not a number and "3" is not an integer in a request body
    model_config = ConfigDict(extra="forbid", strict=True)


class RepoUrl(Request):
    """A git repository the cluster clones (https, ssh, git, file URL, or a local path)."""

    kind: Literal["url"]
    location: GitUrl
    ref: RefName | None = None
    commit: CommitId | None = None


class RepoBundle(Request):
    """A git bundle already in the object store (what `baro submit --repo` uploads)."""

    kind: Literal["bundle"]
    location: ObjectName
    ref: RefName | None = None
    commit: CommitId | None = None


def _json_int(value: object) -> object:
    """JSON's integers: 6 and 6.0 (JSON Schema calls both integers), never true or "6"."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def json_int(ge: int, le: int | None = None) -> Any:
    """An integer field in [ge, le]; the model is strict, so what _json_int does not turn
    into an int is refused."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_json_int)]


# NaN and infinities are not numbers of seconds (JSON has neither; Python's reader takes both)
Seconds = Annotated[float, Field(ge=1, le=inputs.MAX_TIMEOUT_S, allow_inf_nan=False)]
StoryCap = json_int(1, 100)
ParallelismCap = json_int(1, 64)
TokenBudget = json_int(1, 10**12)
Retries = json_int(0, 5)
Attempts = json_int(1, 20)


class LimitsIn(Request):
    max_stories: StoryCap | None = None
    parallelism: ParallelismCap | None = None
    token_budget: TokenBudget | None = Field(
        default=None, description="tokens one agent run of a story may use"
    )
    run_token_budget: TokenBudget | None = Field(
        default=None,
        description="tokens the whole run may use (intake, planning, every agent); agents "
        "are stopped as it is reached. Default: the server's BARO_RUN_TOKEN_BUDGET",
    )
    story_timeout_s: Seconds = 1800.0
    stall_timeout_s: Seconds = 600.0
    retries: Retries = 1
    max_attempts: Attempts = 6
    retry_window_s: Annotated[float, Field(ge=0, le=86_400)] = 600.0
    heals: json_int(0, 10) = Field(  # type: ignore[valid-type]
        default=3,
        description="the run's healing budget: replanning questions for stories that failed twice",
    )


class RunRequest(Request):
    """A goal to run on a repository the cluster can reach."""

    goal: Goal
    repo: Annotated[RepoUrl | RepoBundle, Field(discriminator="kind")]
    mode: ModeRequest = "auto"
    backend: Backend | None = None
    model: ModelName | None = None
    limits: LimitsIn = Field(default_factory=LimitsIn)
    confirm: Literal["auto", "picker"] = Field(
        default="auto",
        description="auto: intake's mode is taken at once; picker: the run waits in "
        "awaiting_confirmation for POST /v1/runs/{id}/mode",
    )
    clarify: Literal["ask", "skip"] = Field(
        default="skip",
        description="a goal that would need a guess raises questions; ask: the run waits in "
        "awaiting_answers for POST /v1/runs/{id}/answers (cancelled when left unanswered "
        "past the timeout); skip: they are recorded and the smallest safe reading is taken",
    )
    publish: Literal["local", "push", "pr"] = Field(
        default="local",
        description="local: the result stays in the object store (baro fetch); push: also "
        "pushed to the URL; pr: pushed and a pull request opened (a bundle source has no "
        "remote: nothing is pushed, and the run says so)",
    )
    intake: Literal["offline", "llm", "auto"] | None = None
    surface: SurfacePolicy | None = Field(
        default=None,
        description="strict: a story that changes files outside its write surface is not "
        "integrated (re-run once, then failed); warn: integrated and reported; default: the "
        "repository's .baro.toml [surface] policy, else strict for parallel runs",
    )
    review: bool | None = Field(
        default=None,
        description="the critic reviews each story with acceptance criteria (one tool-less "
        "question per attempt; a revise verdict gets one repair turn); default: on, except "
        "for the scripted backend",
    )
    replan: bool | None = Field(
        default=None,
        description="a story that failed twice is split, rewritten or given up by a "
        "replanning question (limits.heals a run); default: on",
    )
    checkpoint: bool = Field(
        default=True,
        description="a partial result (some stories integrated, others not, or run checks "
        "failing after the repair story) is delivered as a branch baro/<slug>-checkpoint, "
        "marked partial and never published; false: no branch at all (its work stays at "
        "refs/baro/<run>/integration) and the run needs attention",
    )
    slug: Slug | None = None
    agent_script: dict[str, Any] | None = Field(
        default=None,
        description="the scripted test/demo agent's script; ignored by every other backend",
    )


class ModeChoice(Request):
    """Confirm the suggested mode (no body, or mode null) or override it."""

    mode: Mode | None = None


class CancelRequest(Request):
    reason: CancelReason | None = None


class AnswerIn(Request):
    question_id: QuestionId
    text: AnswerText = Field(default="", description="empty: the question is skipped")


class AnswersIn(Request):
    """Answers to a run's questions (see the run's clarification); a question left out
    or answered with empty text is skipped."""

    answers: list[AnswerIn] = Field(default_factory=list, max_length=10)


# --------------------------------------------------------------------------- responses


class Problem(BaseModel):
    location: str
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong and what to do, in one line")
    problems: list[Problem] = Field(default_factory=list)


class Links(BaseModel):
    self: str
    events: str
    mode: str
    cancel: str
    answers: str


class RepoOut(BaseModel):
    kind: Literal["path", "url", "bundle"]
    location: str = Field(description="URLs are shown without credentials")
    commit: str | None = None
    ref: str | None = None


class Tokens(BaseModel):
    input: int | None = None
    cached_input: int | None = None
    output: int | None = None
    reasoning: int | None = None
    cost_usd: float | None = Field(
        default=None,
        description="US dollars the backends reported; null when none reported a price "
        "(unknown, not free)",
    )


class LimitsOut(BaseModel):
    max_stories: int | None = None
    parallelism: int | None = None
    token_budget: int | None = None
    run_token_budget: int | None = None
    story_timeout_s: float
    stall_timeout_s: float
    retries: int
    max_attempts: int
    retry_window_s: float
    heals: int = 3


class RequestOut(BaseModel):
    mode_request: ModeRequest
    backend: str
    model: str | None = None
    confirm: Literal["auto", "picker"]
    clarify: Literal["ask", "skip"] = "skip"
    publish: Literal["local", "push", "pr"]
    surface: SurfacePolicy | None = None
    review: bool = Field(description="whether the critic reviews the stories")
    checkpoint: bool = Field(
        default=True, description="whether a partial result is delivered as a checkpoint branch"
    )
    limits: LimitsOut
    submitted_by: str | None = None


class ModeOut(BaseModel):
    mode: Mode | None = Field(description="the mode the run goes with (null until decided)")
    suggested: Mode | None = Field(description="intake's suggestion")
    confidence: float | None = None
    reason: str | None = None
    source: DecisionSource | None = Field(
        default=None, description="who decided: offline or llm (intake), user, or flag"
    )
    vague: bool = False
    interpretation: str | None = None
    awaiting_confirmation: bool = False


class QuestionOut(BaseModel):
    id: str
    text: str
    why: str = Field(default="", description="what in the goal made it a question")


class AnswerOut(BaseModel):
    question_id: str
    text: str = Field(default="", description="empty: skipped")


class ClarificationOut(BaseModel):
    status: Literal["asked", "answered", "skipped", "timed_out"] = Field(
        description="asked: the run waits in awaiting_answers; skipped: not asked (the "
        "smallest safe reading was taken); timed_out: the run was cancelled unanswered"
    )
    questions: list[QuestionOut]
    answers: list[AnswerOut] = Field(default_factory=list)
    source: Literal["offline", "llm"] = Field(
        default="offline", description="templated, or a model's"
    )
    reason: str | None = None
    asked_at: float | None = None
    answered_at: float | None = None
    answered_by: str | None = None


class EnvelopeOut(BaseModel):
    """The clarified goal every planner and agent works from."""

    objective: str
    constraints: list[str] = Field(default_factory=list)
    acceptance_criteria: list[str] = Field(default_factory=list)
    non_goals: list[str] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=list)
    source: Literal["offline", "llm"] = "offline"


class RefusalOut(BaseModel):
    path: str
    rule: RefusalRule
    reason: str


class CheckOut(BaseModel):
    command: str
    origin: Literal["configured", "detected"] = Field(
        description="configured: the run base's .baro.toml [verify]; detected: a "
        "conventional check the repository has (pytest, npm test, cargo test, go test)"
    )
    result: Literal["passed", "failed", "skipped"] = Field(
        description="skipped: the check could not judge (not installed, nothing to run, "
        "fails at the base as well); never a pass"
    )
    exit_code: int | None = None
    seconds: float = 0.0
    output: str = Field(default="", description="the tail of its output")
    note: str | None = None


class DecisionOut(BaseModel):
    at: float
    action: Literal[
        "repair", "retry", "replan", "split", "rewrite", "give_up", "run_repair", "checkpoint"
    ]
    reason: str
    story_id: str | None = None
    attempt: int | None = None
    stories: list[str] = Field(default_factory=list, description="stories it added")


class StoryOut(BaseModel):
    id: str
    title: str
    status: StoryStatus
    attempt: int
    depends_on: list[str]
    write_surface: list[str]
    reason: str | None = None
    tokens: Tokens
    agent_s: float
    integration_commit: str | None = None
    conflict_paths: list[str] = Field(default_factory=list)
    dropped_artifacts: list[str] = Field(default_factory=list)
    refused: list[RefusalOut] = Field(
        default_factory=list,
        description="paths the merger refused (left out of the branch, kept in the story's "
        "refs), over every attempt",
    )
    surface_violations: list[str] = Field(
        default_factory=list,
        description="paths changed outside the write surface, over every attempt "
        "(integrated under warn, left out under strict)",
    )
    surface_policy: SurfacePolicy | None = None
    rejections: int = Field(
        default=0, description="attempts left out for changing files outside the write surface"
    )
    checks: list[CheckOut] = Field(
        default_factory=list, description="the story gate of its last attempt"
    )


class TotalsOut(BaseModel):
    """docs/architecture.md, "What a run took and cost"."""

    tokens: Tokens = Field(description="every story attempt, planning and intake")
    wall_s: float = Field(description="from the run's first record to its final state (or now)")
    agent_s: float = Field(
        description="summed lifetime of every attempt's agent process, start to exit"
    )
    speedup: float | None = Field(
        default=None, description="agent_s / wall_s; null before any agent ran"
    )
    stories: int
    stories_integrated: int


class DeliveredOut(BaseModel):
    branch: str | None
    base: str
    head: str
    commits: int
    files_changed: list[str]
    dropped_artifacts: list[str]
    published: Literal["local", "pushed", "pr", "object_store"]
    publish_note: str | None = None
    pr_url: str | None = None
    result_bundle: str | None = None
    verify: Literal["passed", "failed", "skipped"] | None = Field(
        default=None,
        description="the run gate's verdict on the integrated result; skipped: no check "
        "could judge it (unknown, never a pass); null: the repository has no run checks",
    )
    checks: list[CheckOut] = Field(default_factory=list, description="the run gate's checks")
    partial: bool = Field(
        default=False,
        description="the branch is a checkpoint: a partial result, never published",
    )


class CheckpointOut(BaseModel):
    """A partial result (docs/merging.md, "Partial results")."""

    missing: list[str] = Field(description="what the result lacks and why, one line each")
    integrated: list[str] = Field(description="the stories it holds")
    delivered: bool = Field(
        description="delivered as a checkpoint branch (false: --no-checkpoint, no branch; "
        "its work is at refs/baro/<run>/integration)"
    )


class InterruptedOut(BaseModel):
    """A local run whose owning baro process stopped before the run finished: parked
    until ``baro resume RUN`` (or ended by ``baro cancel RUN``)."""

    at: float
    reason: str


class RunSummary(BaseModel):
    run_id: str
    goal: str = Field(description="the goal's first line")
    state: RunState
    mode: Mode | None = None
    repo: RepoOut
    created_at: float
    updated_at: float
    finished_at: float | None = None
    branch: str | None = None
    reason: str | None = None
    interrupted: InterruptedOut | None = None
    tokens: Tokens = Field(
        default_factory=Tokens,
        description="tokens spent so far (intake, planning and every attempt); final once "
        "the run has finished",
    )


class RunList(BaseModel):
    runs: list[RunSummary]


class RunDetail(BaseModel):
    run_id: str
    goal: str
    state: RunState
    reason: str | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    repo: RepoOut
    request: RequestOut
    mode: ModeOut
    clarification: ClarificationOut | None = Field(
        default=None, description="a goal's questions before planning, and their answers"
    )
    envelope: EnvelopeOut | None = None
    stories: list[StoryOut]
    enforcement: list[str]
    decisions: list[DecisionOut] = Field(
        default_factory=list,
        description="the review loop's decisions: repair turns, retries, replanning, "
        "the run gate's repair story, a checkpoint",
    )
    totals: TotalsOut
    delivered: DeliveredOut | None = None
    checkpoint: CheckpointOut | None = Field(
        default=None, description="the result is partial: what it lacks (null: complete)"
    )
    interrupted: InterruptedOut | None = None
    links: Links


class RunAccepted(BaseModel):
    run_id: str
    state: RunState
    links: Links


class ModeAccepted(BaseModel):
    run_id: str
    mode: Mode
    source: Literal["intake", "user"]


class AnswersAccepted(BaseModel):
    run_id: str
    answered: int = Field(description="questions answered")
    skipped: int = Field(description="questions left out or answered with empty text")


class CancelAccepted(BaseModel):
    run_id: str
    state: RunState = Field(description="the state when the cancel was requested")


RUN_ID = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": RUN_ID_PATTERN},
        max_length=100,
        description="a run id, as POST /v1/runs gave",
    ),
    AfterValidator(_run_id),
]
