"""`baro plan`: the plan a run would accept, with its enforcement notes, without running it.

Two inputs: a GOAL (planned offline from its own structure, or by a model when asked with
``--planner llm``), or ``--plan-file FILE`` (a plan written by hand or by another tool,
validated and enforced). Nothing is submitted and no server is needed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from baro_cli import validate
from baro_cli.app import MODE_CHOICES, app, fail, load_settings
from baro_cli.terminal import safe
from baro_cli.validate import UserError
from baro_conductor.core import caps_for
from baro_conductor.policy import enforce
from baro_intake.classifier import classify
from baro_planner.planning import Proposal, Strategy, propose
from baro_shared import oneshot
from baro_shared import schemas as s
from baro_shared.backends import binary_for
from baro_shared.gitutil import git_sync
from baro_shared.oneshot import OneShotResult
from baro_shared.plan import PlanError, plan_from_json
from baro_shared.settings import Settings

PLANNER_CHOICES = ("deterministic", "llm", "auto")
MAX_PLAN_FILE_BYTES = 4 << 20
_PLANNER_LABELS = {
    "deterministic": "from the goal's own structure",
    "single": "the goal as one story",
    "llm": "planned by a model",
    "given": "the given plan",
}


@dataclass
class ModeChoice:
    mode: s.Mode
    source: str  # "flag", "intake" or "plan"
    decision: s.IntakeDecision | None = None


@dataclass
class AcceptedPlan:
    goal: str
    choice: ModeChoice
    proposal: Proposal
    mode: s.Mode
    caps: s.Caps
    stories: list[s.Story]
    enforcement: list[str]

    def as_json(self) -> dict[str, Any]:
        d = self.choice.decision
        return {
            "goal": self.goal,
            "mode": self.mode,
            "mode_source": self.choice.source,
            "confidence": d.confidence if d else None,
            "reason": d.reason if d else None,
            "planner": self.proposal.planner,
            "caps": {"max_stories": self.caps.max_stories, "parallelism": self.caps.parallelism},
            "stories": [story_json(st) for st in self.stories],
            "enforcement": self.enforcement,
            "tokens": s.to_builtins(self.proposal.tokens),
        }


def story_json(story: s.Story) -> dict[str, Any]:
    return {
        "id": story.id,
        "title": story.title,
        "description": story.description,
        "depends_on": list(story.depends_on),
        "write_surface": list(story.write_surface),
        "acceptance": list(story.acceptance),
    }


@app.command()
def plan(
    goal: Annotated[
        str | None,
        typer.Argument(
            help="The goal to plan (optional with --plan-file); - reads it from standard input."
        ),
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan-file", help='Check a plan from a JSON file {"stories": [...]} instead.'
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="auto lets the offline intake decide (or, with --plan-file, the plan's shape)."
        ),
    ] = "auto",
    repo: Annotated[
        Path | None,
        typer.Option("--repo", help="Repository whose files inform the plan (default: here)."),
    ] = None,
    max_stories: Annotated[int | None, typer.Option(min=1, help="Hard cap on stories.")] = None,
    parallelism: Annotated[
        int | None, typer.Option(min=1, help="Hard cap on agents running at once.")
    ] = None,
    planner: Annotated[
        str,
        typer.Option(help="deterministic (offline, default), llm (ask --backend), or auto."),
    ] = "deterministic",
    backend: Annotated[
        str | None, typer.Option(help="Agent CLI for --planner llm (default: BARO_BACKEND).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model passed to the agent CLI.")] = None,
    script: Annotated[
        Path | None, typer.Option(help="Script for the scripted test/demo agent (JSON file).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Print the plan a run would accept, and every repair enforcement made, without running it."""
    settings = load_settings()
    try:
        accepted = make_plan(
            goal,
            plan_file,
            mode,
            repo,
            max_stories,
            parallelism,
            planner,
            backend or settings.backend,
            model,
            script,
            settings,
        )
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    if as_json:
        typer.echo(json.dumps(accepted.as_json(), indent=2))
    else:
        render(accepted, sys.stdout)


def make_plan(
    goal: str | None,
    plan_file: Path | None,
    mode: str,
    repo: Path | None,
    max_stories: int | None,
    parallelism: int | None,
    planner: str,
    backend: str,
    model: str | None,
    script: Path | None,
    settings: Settings,
) -> AcceptedPlan:
    if mode not in MODE_CHOICES:
        raise UserError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_CHOICES)}")
    if planner not in PLANNER_CHOICES:
        raise UserError(f"unknown planner {planner!r}: choose one of {', '.join(PLANNER_CHOICES)}")
    if goal is None and plan_file is None:
        raise UserError(
            'nothing to plan: give a GOAL (baro plan "add tests for a.py and b.py") '
            "or --plan-file FILE"
        )
    text = validate.read_goal(goal, None) if goal is not None else ""
    validate.model_name(model)
    limits = s.Limits(max_stories=max_stories, parallelism=parallelism)
    if plan_file is not None:
        given = read_plan_file(plan_file)
        choice = mode_for_plan(given, mode)
        proposal = Proposal(given, "given", [f"the plan was read from {plan_file}"])
    else:
        choice = mode_for_goal(text, mode)
        files = repository_files(repo)
        caps = run_caps(text, limits, choice)
        proposal = plan_goal_text(
            text, choice.mode, caps, files, planner, backend, model, script, settings
        )
    return accept(text, choice, proposal, limits)


def read_plan_file(path: Path) -> list[s.Story]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PLAN_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"cannot read the plan file {path}: {reason}") from None
    if len(data) > MAX_PLAN_FILE_BYTES:
        raise UserError(f"{path}: the plan file is larger than {MAX_PLAN_FILE_BYTES >> 20} MB")
    try:
        return plan_from_json(data)
    except PlanError as exc:
        raise UserError(f"{path}: {exc}") from None


def mode_for_goal(goal: str, mode: str) -> ModeChoice:
    if mode != "auto":
        return ModeChoice(mode, "flag")  # type: ignore[arg-type]
    decision = classify(goal)
    return ModeChoice(decision.mode, "intake", decision)


def mode_for_plan(stories: list[s.Story], mode: str) -> ModeChoice:
    """A given plan's mode: the flag, else one story -> focused, else parallel (enforcement
    turns a plan whose stories cannot run side by side into sequential, and says why)."""
    if mode != "auto":
        return ModeChoice(mode, "flag")  # type: ignore[arg-type]
    return ModeChoice("focused" if len(stories) == 1 else "parallel", "plan")


def repository_files(repo: Path | None) -> list[str] | None:
    """Files tracked at HEAD (what a run's planner sees); None outside a repository."""
    if repo is None:
        try:
            root, head = validate.repository(Path("."))
        except UserError:
            return None  # planning outside a repository: no file list
    else:
        root, head = validate.repository(repo)
    listed = git_sync("ls-tree", "-r", "-z", "--name-only", "--full-tree", head, cwd=root)
    return [name for name in listed.out.split("\0") if name]


def run_caps(goal: str, limits: s.Limits, choice: ModeChoice) -> s.Caps:
    """The caps a run of this goal would get (the conductor's own rule)."""
    request = s.RunSubmitted(
        run_id="plan", goal=goal, repo=s.RepoSource(kind="path", location="."), limits=limits
    )
    record = s.RunRecord(run_id="plan", request=request)
    return caps_for(record, choice.mode, choice.decision)


def plan_goal_text(
    goal: str,
    mode: s.Mode,
    caps: s.Caps,
    files: list[str] | None,
    planner: str,
    backend: str,
    model: str | None,
    script: Path | None,
    settings: Settings,
) -> Proposal:
    installed = False
    agent_script = None
    if planner != "deterministic":
        validate.backend_name(backend)
        installed = binary_for(backend, settings) is not None
        if planner == "llm":
            validate.backend(backend, settings, local=True)
        agent_script = validate.agent_script(script)

    async def ask(prompt: str, purpose: str) -> OneShotResult:
        return await oneshot.ask(
            backend, prompt, settings, purpose=purpose, model=model, agent_script=agent_script
        )

    strategy: Strategy = planner  # type: ignore[assignment]
    try:
        proposal = asyncio.run(
            propose(
                goal,
                mode,
                caps,
                files,
                strategy=strategy,
                backend=backend,
                installed=installed,
                ask=ask,
            )
        )
    except PlanError as exc:
        raise UserError(str(exc)) from None
    if not proposal.ok:
        raise UserError(f"planning failed: {proposal.error}", code=1)
    return proposal


def accept(goal: str, choice: ModeChoice, proposal: Proposal, limits: s.Limits) -> AcceptedPlan:
    """What the conductor would accept: validation, then the mode's enforcement."""
    caps = run_caps(goal, limits, choice)
    try:
        enforced = enforce(proposal.stories, choice.mode, caps, goal)
    except PlanError as exc:
        raise UserError(f"the plan was rejected: {exc}") from None
    if enforced.mode != "parallel":  # as the conductor does: a chain runs one at a time
        caps = s.Caps(max_stories=max(caps.max_stories, len(enforced.stories)), parallelism=1)
    return AcceptedPlan(
        goal=goal,
        choice=choice,
        proposal=proposal,
        mode=enforced.mode,
        caps=caps,
        stories=enforced.stories,
        enforcement=[*proposal.notes, *enforced.notes],
    )


def render(accepted: AcceptedPlan, out: TextIO) -> None:
    w = safe(out).write
    choice, d = accepted.choice, accepted.choice.decision
    how = {"flag": "decided by --mode", "plan": "from the plan's shape"}.get(choice.source, "")
    if d is not None:
        how = f"decided by intake, {d.confidence:.0%} confident: {d.reason}"
    if accepted.mode != choice.mode:
        how += f"; enforcement turned {choice.mode} into {accepted.mode} (see below)"
    w(f"mode: {accepted.mode} — {how}\n")
    count = len(accepted.stories)
    w(
        f"plan: {count} {'story' if count == 1 else 'stories'} "
        f"({_PLANNER_LABELS[accepted.proposal.planner]}), "
        f"up to {accepted.caps.parallelism} at a time\n"
    )
    for st in accepted.stories:
        w(f"\n  {st.id}  {st.title}\n")
        if st.depends_on:
            w(f"      after: {', '.join(st.depends_on)}\n")
        surface = ", ".join(st.write_surface) if st.write_surface else "(undeclared: any file)"
        w(f"      writes: {surface}\n")
        for item in st.acceptance:
            w(f"      done when: {item}\n")
    if accepted.enforcement:
        w("\nenforcement:\n")
        for note in accepted.enforcement:
            w(f"  - {note}\n")
    tokens = accepted.proposal.tokens
    if tokens.is_known():
        w(f"\nplanning tokens: input {tokens.input or 0}, output {tokens.output or 0}\n")
