"""`baro run`: submit a goal and follow it to a delivered branch."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, get_args

import typer

from baro_cli import defaults, runflow, validate, watching
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
    fail,
    load_settings,
    setup_logging,
)
from baro_cli.doctor import check_sandbox
from baro_cli.questions import Answerer, FileAnswers, TerminalAnswers, read_answers_file
from baro_cli.validate import UserError
from baro_merger.naming import normalize_baro_branch
from baro_shared import schemas as s
from baro_shared.bus import Bus, BusUnavailable, bus_problem
from baro_shared.gitutil import git_sync
from baro_shared.processes import current_owner, interruption
from baro_shared.service import StartupError
from baro_shared.settings import Settings

MAX_FOLLOW_UP_COMMITS = 20  # of a --continue branch, listed in the agents' prompt

INTAKE_CHOICES: tuple[str, ...] = get_args(s.IntakeStrategy)


@app.command()
def run(
    goal: GoalArgument = None,
    goal_file: GoalFileOption = None,
    repo: Annotated[
        Path, typer.Option("--repo", help="The git repository (default: the current one).")
    ] = Path("."),
    backend: Annotated[
        str | None,
        typer.Option(help="Agent CLI: claude, codex, opencode, pi, or scripted (test/demo)."),
    ] = None,
    model: ModelOption = None,
    mode: ModeOption = "auto",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Accept the suggested mode without the picker.")
    ] = False,
    intake: Annotated[
        str | None,
        typer.Option(
            help="offline (classifier only), llm (ask the backend), or auto (ask it when the "
            "classifier is unsure); default BARO_INTAKE or offline."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final summary as one JSON object.")
    ] = False,
    planner: Annotated[
        str | None,
        typer.Option(
            help="auto (the goal's structure, else a model), deterministic (never a model), or llm."
        ),
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan-file",
            help='Run these stories (JSON {"stories": [...]}, as `baro plan --json` prints).',
        ),
    ] = None,
    nats_url: Annotated[
        str | None, typer.Option(help="Use this NATS cluster instead of the embedded server.")
    ] = None,
    max_stories: MaxStoriesOption = None,
    parallelism: ParallelismOption = None,
    token_budget: TokenBudgetOption = None,
    run_token_budget: RunTokenBudgetOption = None,
    story_timeout: StoryTimeoutOption = None,
    stall_timeout: StallTimeoutOption = None,
    max_attempts: MaxAttemptsOption = s.Limits().max_attempts,
    retry_window: RetryWindowOption = s.Limits().retry_window_s,
    surface: SurfaceOption = None,
    publish: Annotated[
        str | None,
        typer.Option(
            help="local (default); push: push the branch; pr: push it and open a pull request "
            "(only where a remote and credentials exist)."
        ),
    ] = None,
    continue_branch: Annotated[
        str | None,
        typer.Option(
            "--continue",
            metavar="BRANCH",
            help="Follow up on a baro branch: run GOAL on top of it and move it forward "
            "(default mode: focused).",
        ),
    ] = None,
    script: Annotated[
        Path | None, typer.Option(help="Script for the scripted test/demo agent (JSON file).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    events: watching.EventsOption = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="No design note before parallel stories start (one question less)."
        ),
    ] = False,
    notify: Annotated[
        list[str] | None,
        typer.Option(
            "--notify",
            metavar="URL|desktop",
            help="When the run ends or waits for you: POST to this webhook (over .baro.toml "
            "[notify] webhook), and/or show a desktop notification. May be given twice.",
        ),
    ] = None,
    replan: ReplanOption = None,
    review: ReviewOption = None,
    checkpoint: CheckpointOption = None,
    clarify: Annotated[
        str | None,
        typer.Option(
            "--clarify",
            metavar="ask|skip",
            help="A goal that would need a guess raises questions. ask: answer them before "
            "planning (at a terminal; else the run waits for `baro answer`); skip: take the "
            "smallest safe reading (recorded). Default: ask at a terminal without --yes.",
        ),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(
            "--answers",
            metavar="FILE",
            help="Answers to the goal's questions, without a terminal: a JSON object of "
            'question id (or 1-based position) to answer, e.g. {"target": "api/search.py"}.',
        ),
    ] = None,
    model_tiers: Annotated[
        str | None,
        typer.Option(
            "--model-tiers",
            metavar="KIND=MODEL,...",
            help="A model per kind of story: docs, tests, small (one file), default; "
            "KIND=BACKEND:MODEL also picks the agent CLI. Wins over .baro.toml [models].",
        ),
    ] = None,
) -> None:
    """Run GOAL on a repository and deliver the result as a branch baro/<slug>.

    Defaults come from the flags, else BARO_* variables, else the repository's
    .baro.toml [defaults] (at the commit the run starts from); `baro doctor` shows them."""
    settings = load_settings(nats_url)
    setup_logging(settings, quiet=True)
    flags = {
        "backend": backend, "model": model, "intake": intake, "planner": planner,
        "publish": publish, "surface": surface, "max_stories": max_stories,
        "parallelism": parallelism, "token_budget": token_budget,
        "run_token_budget": run_token_budget,
        "story_timeout": story_timeout, "stall_timeout": stall_timeout,
        "review": review, "replan": replan,
        "checkpoint": None if checkpoint is None else ("on" if checkpoint else "off"),
    }  # fmt: skip
    try:
        root, head = validate.repository(repo)
        if continue_branch:
            head = baro_branch_to_continue(root, continue_branch)[1]
        webhook, desktop = validate.notify(notify or [])
        chosen = defaults.choose(flags, settings, root, head)
        value = {name: resolved.value for name, resolved in chosen.items()}
        request = build_request(
            validate.read_goal(goal, goal_file),
            repo,
            str(value["backend"]),
            value["model"],  # type: ignore[arg-type]
            mode,
            yes,
            nats_url is not None,
            settings,
            value["max_stories"],  # type: ignore[arg-type]
            value["parallelism"],  # type: ignore[arg-type]
            value["token_budget"],  # type: ignore[arg-type]
            float(value["story_timeout"]),  # type: ignore[arg-type]
            float(value["stall_timeout"]),  # type: ignore[arg-type]
            str(value["publish"]),
            script,
            continue_branch=continue_branch,
            intake=str(value["intake"]),
            planner=str(value["planner"]),
            plan_file=plan_file,
            surface=value["surface"],  # type: ignore[arg-type]
            quick=quick,
            model_tiers=model_tiers,
            defaults=[resolved.as_setting() for resolved in chosen.values()],
            notify=(webhook, desktop),
            run_token_budget=value["run_token_budget"],  # type: ignore[arg-type]
            max_attempts=max_attempts,
            retry_window=retry_window,
            review=value["review"],  # type: ignore[arg-type]
            replan=value["replan"],  # type: ignore[arg-type]
            checkpoint=value["checkpoint"] != "off",
            clarify=clarify,
            answers_given=answers is not None,
        )
        answerer = _answerer(request, answers)
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    picker = None
    if request.confirm == "picker":
        from baro_cli.picker import pick_mode

        picker = pick_mode
    shown = watching.Shown(quiet=quiet, as_json=as_json, events=events)
    if nats_url is None:
        sandbox = check_sandbox(settings)  # tried once already, by the machine checks
        if sandbox.status == "warn":
            shown.progress.note(sandbox.detail)
    # a plan file without --mode: the mode comes from the plan's shape, not from a flag
    chosen_by = "the plan's shape" if plan_file is not None and mode == "auto" else None
    try:
        report = asyncio.run(
            _run(
                request,
                settings,
                shown,
                picker,
                embedded=nats_url is None,
                chosen_by=chosen_by,
                answerer=answerer,
            )
        )
    except BusUnavailable as exc:
        raise fail(
            bus_problem(exc, "start NATS there, or omit --nats-url to use the embedded server"), 2
        ) from None
    except StartupError as exc:  # e.g. BARO_API_PORT in use
        raise fail(str(exc), 2) from None
    shown.summary(report)
    raise typer.Exit(runflow.exit_code(report))


def _answerer(request: s.RunSubmitted, answers: Path | None) -> Answerer | None:
    """Who answers the goal's questions: the file, the terminal, or (None) ``baro answer``."""
    if request.clarify != "ask":
        return None
    if answers is not None:
        return FileAnswers(read_answers_file(answers))
    return TerminalAnswers() if _interactive() else None


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def clarify_policy(
    clarify: str | None, answers_given: bool, mode: str, yes: bool, interactive: bool
) -> s.ClarifyPolicy:
    """Ask or skip the goal's questions: --answers asks, then --clarify, then ask at a
    terminal unless --yes."""
    if clarify is not None:
        validate.clarify_choice(clarify)
    if answers_given and clarify == "skip":
        raise UserError(
            "--answers answers the goal's questions and --clarify skip skips them: pass one"
        )
    if answers_given and mode != "auto":
        raise UserError(
            "--answers needs the intake, which --mode skips: drop --mode (the mode is then "
            "decided on the clarified goal)"
        )
    if answers_given:
        return "ask"
    if clarify is not None:
        return clarify  # type: ignore[return-value]
    return "ask" if interactive and not yes and mode == "auto" else "skip"


def build_request(
    goal: str,
    repo: Path,
    backend: str,
    model: str | None,
    mode: str,
    yes: bool,
    remote: bool,
    settings: Settings,
    max_stories: int | None,
    parallelism: int | None,
    token_budget: int | None,
    story_timeout: float,
    stall_timeout: float,
    publish: str,
    script: Path | None,
    continue_branch: str | None = None,
    intake: str = "offline",
    planner: str = "auto",
    plan_file: Path | None = None,
    surface: str | None = None,
    quick: bool = False,
    model_tiers: str | None = None,
    defaults: list[s.ChosenSetting] | None = None,
    notify: tuple[str | None, bool] = (None, False),
    *,
    run_token_budget: int | None = None,
    max_attempts: int = s.Limits().max_attempts,
    retry_window: float = s.Limits().retry_window_s,
    review: str | None = None,
    replan: str | None = None,
    checkpoint: bool = True,
    clarify: str | None = None,
    answers_given: bool = False,
) -> s.RunSubmitted:
    text = validate.goal_text(goal)
    surface_policy = validate.surface_policy(surface)
    if mode not in MODE_CHOICES:
        raise UserError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_CHOICES)}")
    if planner not in get_args(s.PlanStrategy):
        raise UserError(f"unknown planner {planner!r}: choose auto, deterministic or llm")
    given_plan = None
    if plan_file is not None:
        from baro_cli.commands.plan import mode_for_plan, read_plan_file

        given_plan = read_plan_file(plan_file)
        mode = mode_for_plan(given_plan, mode).mode
    if intake not in INTAKE_CHOICES:
        raise UserError(f"unknown intake {intake!r}: choose one of {', '.join(INTAKE_CHOICES)}")
    if publish not in ("local", "push", "pr"):
        raise UserError(f"unknown publish policy {publish!r}: choose local, push or pr")
    validate.backend_name(backend)
    root, head = validate.repository(repo)
    follow_up = None
    held = None
    if continue_branch:
        # the follow-up starts from the branch's head as it is now
        follow_up, head = baro_branch_to_continue(root, continue_branch)
        held = branch_commits(root, head)
        if mode == "auto":
            mode = "focused"  # a follow-up is one change on top of the branch
    validate.model_name(model)
    validate.backend(backend, settings, local=not remote, model=model)
    tiers = validate.model_tiers(model_tiers)
    for other, other_model in validate.story_agents(given_plan or [], tiers, backend):
        validate.backend(other, settings, local=not remote, model=other_model)
    if not remote:
        validate.machine(settings)
    agent_script = validate.agent_script(script)
    interactive = _interactive()
    confirm: s.Confirm = "picker" if (mode == "auto" and not yes and interactive) else "auto"
    clarify_as = clarify_policy(clarify, answers_given, mode, yes, interactive)
    request = s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal=text,
        repo=s.RepoSource(kind="path", location=str(root), commit=head, ref=_current_branch(root)),
        continue_branch=follow_up,
        follow_up=held,
        mode_request=mode,  # type: ignore[arg-type]
        intake=intake,  # type: ignore[arg-type]
        planner=planner,  # type: ignore[arg-type]
        plan=given_plan,
        backend=backend,
        model=model,
        limits=s.Limits(
            max_stories=max_stories,
            parallelism=parallelism,
            token_budget=token_budget,
            run_token_budget=run_token_budget,
            story_timeout_s=story_timeout,
            stall_timeout_s=stall_timeout,
            max_attempts=max_attempts,
            retry_window_s=retry_window,
        ),
        confirm=confirm,
        publish=publish,  # type: ignore[arg-type]
        agent_script=agent_script,
        submitted_by=f"{os.environ.get('USER', 'user')}@cli",
        surface=surface_policy,  # type: ignore[arg-type]
        # a run on this process's embedded server is this process's; one sent to a
        # cluster (--nats-url) is the cluster's
        owner=None if remote else current_owner("baro run"),
        quick=quick,
        model_tiers=tiers,
        defaults=defaults or [],
        notify_webhook=notify[0],
        notify_desktop=notify[1],
        review=validate.on_off("--review", review),
        replan=validate.on_off("--replan", replan),
        checkpoint=checkpoint,
        clarify=clarify_as,
    )
    validate.refs_free(root, request.run_id, new_branch=follow_up is None)
    return validate.submission(request)


async def _run(
    request: s.RunSubmitted,
    settings: Settings,
    shown: watching.Shown,
    picker: runflow.Picker | None,
    *,
    embedded: bool,
    chosen_by: str | None = None,
    answerer: Answerer | None = None,
) -> runflow.RunReport:
    from baro_cli.stack import LocalStack

    interrupt = runflow.install_interrupt(asyncio.get_running_loop())
    if embedded:
        stack = LocalStack(settings, command="baro run", on_note=shown.progress.note)
        async with stack as live:
            report = await _submit_and_follow(
                request,
                live,
                shown,
                picker,
                interrupt,
                look_for_interrupted=stack.shared,
                owns_services=True,
                chosen_by=chosen_by,
                answerer=answerer,
            )
            report.bus_refused = stack.refused_connections()
            if report.bus_refused:
                shown.progress.note(runflow.bus_refused_line(report.bus_refused))
            return report
    return await _submit_and_follow(
        request, settings, shown, picker, interrupt, chosen_by=chosen_by, answerer=answerer
    )


async def _submit_and_follow(
    request: s.RunSubmitted,
    settings: Settings,
    shown: watching.Shown,
    picker: runflow.Picker | None,
    interrupt: asyncio.Event,
    *,
    look_for_interrupted: bool = False,
    owns_services: bool = False,
    chosen_by: str | None = None,
    answerer: Answerer | None = None,
) -> runflow.RunReport:
    progress = shown.progress
    bus = await Bus.open(settings, "baro-cli")
    try:
        if look_for_interrupted:
            note = interrupted_runs_note(await bus.list_records(), request.repo.location)
            if note:
                progress.note(note)
        if request.follow_up is not None and request.continue_branch:
            request.follow_up.goals = earlier_goals(
                await bus.list_records(), request.repo.location, request.continue_branch
            )
        progress.line(f"run {request.run_id} submitted: {request.goal.splitlines()[0][:100]}")
        await runflow.submit(bus, request)
        report = await runflow.follow(
            bus,
            request,
            progress,
            picker,
            interrupt=interrupt,
            watchers=shown.watchers,
            mode_chosen_by=chosen_by,
            answerer=answerer,
        )
        if owns_services:
            await runflow.keep_attempts_before_stopping(bus, report, interrupt)
        return report
    finally:
        await bus.close()


def interrupted_runs_note(records: list[s.RunRecord], repository: str) -> str | None:
    """One line naming the interrupted runs of ``repository`` (None when there are none)."""
    found = sorted(
        rec.run_id
        for rec in records
        if rec.request.repo.kind == "path"
        and rec.request.repo.location == repository
        and interruption(rec) is not None
    )
    if not found:
        return None
    if len(found) == 1:
        run_id = found[0]
        return (
            f"run {run_id} of this repository was interrupted (its baro process stopped): "
            f"baro resume {run_id} continues it, baro cancel {run_id} ends it"
        )
    return (
        f"{len(found)} runs of this repository were interrupted ({', '.join(found)}): "
        "baro resume RUN continues one, baro cancel RUN ends it"
    )


def earlier_goals(records: list[s.RunRecord], repository: str, branch: str) -> list[str]:
    """The goals of the runs that delivered ``branch`` of ``repository``, oldest first."""
    made = sorted(
        (rec for rec in records if rec.delivered is not None and rec.delivered.branch == branch),
        key=lambda rec: rec.created_at,
    )
    return [
        rec.request.goal
        for rec in made
        if rec.request.repo.kind == "path" and rec.request.repo.location == repository
    ]


def branch_commits(root: Path, head: str) -> s.FollowUp:
    """The commits a follow-up's branch holds that the checkout's HEAD does not, newest
    first (what earlier runs added), at most MAX_FOLLOW_UP_COMMITS of them."""
    span = (head, "--not", "HEAD", "--")
    listed = git_sync(
        "-C", str(root), "log", f"--max-count={MAX_FOLLOW_UP_COMMITS}", "--format=%h %s", *span,
        check=False,
    )  # fmt: skip
    counted = git_sync("-C", str(root), "rev-list", "--count", *span, check=False)
    commits = listed.out.splitlines() if listed.returncode == 0 else []
    total = int(counted.out) if counted.returncode == 0 and counted.out.isdigit() else 0
    return s.FollowUp(commits=commits, more_commits=max(0, total - len(commits)))


def baro_branch_to_continue(root: Path, name: str) -> tuple[str, str]:
    """The baro branch ``--continue`` names and its head commit, checked: it exists and
    nobody has it checked out (delivery fast-forwards it at the end of the run)."""
    try:
        branch = normalize_baro_branch(name)
    except ValueError:
        raise UserError(
            f"--continue {name}: not a baro branch (expected baro/<name>); "
            "baro only moves branches it made"
        ) from None
    found = git_sync(
        "-C", str(root), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}",
        check=False,
    )  # fmt: skip
    if found.returncode != 0:
        raise UserError(
            f"--continue {name}: there is no branch {branch} in {root} "
            "(git branch --list 'baro/*' shows baro's branches)"
        )
    worktrees = git_sync("-C", str(root), "worktree", "list", "--porcelain", check=False)
    for block in worktrees.stdout.split("\n\n"):
        if f"branch refs/heads/{branch}" in block.splitlines():
            where = block.splitlines()[0].removeprefix("worktree ")
            raise UserError(
                f"--continue {branch}: it is checked out in {where}; switch that checkout to "
                "another branch first (the run moves the branch forward when it is delivered)"
            )
    return branch, found.out


def _current_branch(root: Path) -> str | None:
    """``refs/heads/<name>`` checked out in ``root`` (None when detached): a pull request's base."""
    head = git_sync("-C", str(root), "symbolic-ref", "--quiet", "HEAD", check=False)
    return head.out if head.returncode == 0 and head.out.startswith("refs/heads/") else None
