"""Checks on user input before anything is submitted; each failure is one clear line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import BinaryIO

from baro_cli.doctor import Check, backend_checks, machine_checks
from baro_shared import inputs
from baro_shared import schemas as s
from baro_shared.backends import KNOWN_BACKENDS, model_problem
from baro_shared.gitutil import git_sync
from baro_shared.repoconfig import webhook_problem
from baro_shared.settings import Settings


class UserError(Exception):
    """A mistake in what the user asked for; the message says what is wrong and what to do."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def goal_text(goal: str) -> str:
    """The goal, stripped, checked as every door checks it (baro_shared.inputs)."""
    try:
        return inputs.check_goal(goal)
    except inputs.InputProblem as exc:
        raise UserError(str(exc)) from None


def read_goal(goal: str | None, goal_file: Path | None, stdin: BinaryIO | None = None) -> str:
    """The goal from the argument, from standard input (GOAL ``-``) or from ``--goal-file``."""
    if goal is not None and goal_file is not None:
        raise UserError("give the goal as GOAL or with --goal-file, not both")
    if goal_file is not None:
        try:
            with goal_file.open("rb") as fh:
                data = fh.read(inputs.GOAL_MAX_BYTES + 1)
        except OSError as exc:
            raise UserError(
                f"cannot read the goal file {goal_file}: {exc.strerror or exc}"
            ) from None
        return goal_text(_goal_from_bytes(data, f"the goal file {goal_file}"))
    if goal == "-":
        source = stdin if stdin is not None else sys.stdin.buffer
        return goal_text(_goal_from_bytes(source.read(inputs.GOAL_MAX_BYTES + 1), "standard input"))
    if goal is None:
        raise UserError(
            'no goal: say what to change (baro run "fix the typo in README.md"), '
            "or pass - to read it from standard input, or --goal-file FILE"
        )
    return goal_text(goal)


def _goal_from_bytes(data: bytes, where: str) -> str:
    if len(data) > inputs.GOAL_MAX_BYTES:
        raise UserError(
            f"the goal in {where} is longer than {inputs.GOAL_MAX_BYTES} bytes: shorten it, or "
            "put the details in a file in the repository and name that file in the goal"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"the goal in {where} is not UTF-8 text (byte 0x{data[exc.start]:02x} at {exc.start})"
        ) from None
    # a file saved on Windows or with a byte-order mark is still a plain goal
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def model_name(model: str | None) -> str | None:
    if model is None:
        return None
    try:
        return inputs.check_model(model)
    except inputs.InputProblem as exc:
        raise UserError(str(exc)) from None


def submission(request: s.RunSubmitted) -> s.RunSubmitted:
    """The whole request, checked as the conductor will check it when it reads it."""
    try:
        return inputs.check_submission(request)
    except inputs.InputProblem as exc:
        raise UserError(str(exc)) from None


def repository(path: Path) -> tuple[Path, str]:
    """The repository's top level and its HEAD commit."""
    target = path.expanduser()
    if not target.exists():
        raise UserError(f"{target} does not exist: pass --repo with the path of a git repository")
    top = git_sync("-C", str(target), "rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0:
        bare = git_sync("-C", str(target), "rev-parse", "--is-bare-repository", check=False)
        if bare.returncode == 0 and bare.out == "true":
            raise UserError(
                f"{target.resolve()} is a bare repository (it has no working tree): run baro "
                f"in a clone of it (git clone {target.resolve()} DIR), or submit it to a "
                "cluster by URL (baro submit --url)"
            )
        raise UserError(
            f"{target.resolve()} is not a git repository: run baro inside one, or pass --repo PATH"
        )
    root = Path(top.out)
    head = git_sync(
        "-C", str(root), "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False
    )
    if head.returncode != 0:
        raise UserError(
            f"{root} has no commits yet: commit your code first (baro starts from a commit)"
        )
    return root, head.out


def refs_free(root: Path, run_id: str, *, new_branch: bool) -> None:
    """Refs that sit where baro needs a directory of refs: ``refs/baro`` and
    ``refs/baro/<run>`` (the run keeps its attempts under ``refs/baro/<run>/``), and a
    branch ``baro`` when the result is a new ``baro/<name>`` branch. Git cannot make a
    ref below another ref, so the run would fail at its first write; it fails here."""
    listed = git_sync(
        "-C", str(root), "for-each-ref", "--format=%(refname)", "refs/baro", "refs/heads/baro",
        check=False,
    )  # fmt: skip
    existing = set(listed.stdout.split())
    for name in ("refs/baro", f"refs/baro/{run_id}"):
        if name in existing:
            raise UserError(
                f"{root} has a ref named {name}, where baro keeps the run's refs "
                f"({name}/...): rename or delete it (git update-ref -d {name}) and run again"
            )
    if new_branch and "refs/heads/baro" in existing:
        raise UserError(
            f"{root} has a branch named 'baro', and the result goes to a branch baro/<name>: "
            "rename it (git branch -m baro <other-name>) and run again"
        )


def backend_name(name: str) -> str:
    if name not in KNOWN_BACKENDS:
        raise UserError(f"unknown backend {name!r}: choose one of {', '.join(KNOWN_BACKENDS)}")
    return name


def backend(name: str, settings: Settings, *, local: bool, model: str | None = None) -> str:
    """``name``, checked: known, and where it runs here, installed with its credentials."""
    backend_name(name)
    if local:
        checks = backend_checks(name, settings, model, chosen=True, version=False)
        stop_on_failure(checks)
    return name


def machine(settings: Settings) -> None:
    """git, baro's own directories and disk space, as ``baro doctor`` checks them."""
    stop_on_failure(machine_checks(settings))


def stop_on_failure(checks: list[Check]) -> None:
    failed = next((c for c in checks if c.status == "fail"), None)
    if failed is not None:
        raise UserError(failed.line())


def agent_script(path: Path | None) -> str | None:
    """The scripted test/demo agent's script from ``path`` (checked to be JSON), or None."""
    if path is None:
        return None
    try:
        text = path.read_text()
        json.loads(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot use the agent script {path}: {exc}") from None
    return text


def notify(values: list[str]) -> tuple[str | None, bool]:
    """``--notify`` values: at most one webhook URL, and ``desktop``."""
    urls = [v.strip() for v in values if v.strip() != "desktop"]
    for url in urls:
        if problem := webhook_problem(url):
            raise UserError(f"--notify {url!r}: a webhook {problem}, or the word desktop")
    if len(urls) > 1:
        raise UserError("--notify takes one webhook URL (and desktop): more than one was given")
    return (urls[0] if urls else None), len(urls) < len(values)


def on_off(flag: str, value: str | None) -> bool | None:
    """An on|off flag's value (None: not given)."""
    if value not in (None, "on", "off"):
        raise UserError(f"unknown {flag} {value!r}: choose on or off")
    return None if value is None else value == "on"


def clarify_choice(value: str) -> s.ClarifyPolicy:
    if value not in ("ask", "skip"):
        raise UserError(f"unknown --clarify {value!r}: choose ask or skip")
    return value  # type: ignore[return-value]


def surface_policy(value: str | None) -> str | None:
    """``--surface``: strict, warn, or None (the repository's or the mode's default)."""
    if value is None:
        return None
    choice = value.strip().lower()
    if choice not in ("strict", "warn"):
        raise UserError(f"unknown surface policy {value!r}: choose strict or warn")
    return choice


TIER_KINDS: tuple[str, ...] = ("docs", "tests", "small", "default")


def model_tiers(text: str | None) -> list[s.ModelTier]:
    """``--model-tiers docs=MODEL,tests=BACKEND:MODEL``, checked."""
    tiers: list[s.ModelTier] = []
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        kind, equals, value = (part.strip() for part in entry.partition("="))
        if not equals or not value:
            raise UserError(
                f"--model-tiers: {entry.strip()!r} is not KIND=MODEL "
                "(e.g. --model-tiers docs=claude-haiku-4-5,tests=codex:gpt-5-mini)"
            )
        if kind not in TIER_KINDS:
            raise UserError(f"--model-tiers: unknown kind {kind!r}: choose {', '.join(TIER_KINDS)}")
        if any(t.kind == kind for t in tiers):
            raise UserError(f"--model-tiers: {kind} is given twice")
        prefix, colon, rest = value.partition(":")
        backend = prefix if colon and prefix in KNOWN_BACKENDS else None
        model = rest if backend else value
        problem = model_problem(model)
        if problem:
            raise UserError(f"--model-tiers {kind}: {problem}")
        tiers.append(s.ModelTier(kind=kind, model=model, backend=backend))  # type: ignore[arg-type]
    return tiers


def story_agents(
    stories: list[s.Story], tiers: list[s.ModelTier], run_backend: str
) -> list[tuple[str, str | None]]:
    """Every other agent CLI a run will start (a story's own, a tier's), with its model, so
    each is checked at the door like the run's own."""
    found: dict[str, str | None] = {}
    for story in stories:
        if story.backend and story.backend != run_backend:
            found.setdefault(story.backend, story.model)
    for tier in tiers:
        if tier.backend and tier.backend != run_backend:
            found.setdefault(tier.backend, tier.model)
    return list(found.items())
