"""What baro accepts at its doors: one set of checks and limits for every text that enters.

The CLI, the HTTP API and the conductor (for a ``RunSubmitted`` read off the bus) all ask
the same questions here, so a goal the CLI refuses is refused by the API too, in the same
words. Each problem is an ``InputProblem`` whose message is one line naming the field and
what to do.

- Prose (a goal, a story's title, description and acceptance criteria): no control
  characters but newline and tab, no lone surrogates.
- Names (a model, a ref, a slug, a path): no control characters at all; a model name is
  letters, digits and ``. _ : / @ + -``, starting with a letter or digit (never '-', where
  an agent CLI would read it as an option).
- A goal is at most ``GOAL_MAX_BYTES`` of UTF-8 (bytes, not characters: an emoji is four).
- A plan has at most ``MAX_PLAN_STORIES`` stories (see ``baro_shared.plan``).

Messages quote user text with ``repr``, so a control character in it never reaches a
terminal raw.
"""

from __future__ import annotations

import math
import re
import unicodedata

from baro_shared import schemas as s
from baro_shared import sources
from baro_shared.backends import model_problem
from baro_shared.surfaces import has_control_character

GOAL_MAX_BYTES = 32 * 1024
MAX_TIMEOUT_S = 86_400.0  # a story's wall-clock and stall timeouts: a day at most
SLUG_MAX = 48
MAX_PLAN_STORIES = 500

# every C0 control but tab and newline, DEL, every C1 control
_PROSE_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")


class InputProblem(ValueError):
    """Input baro will not take; the message is one line saying what and what to do."""


def describe_character(char: str) -> str:
    """``U+001B (escape)``-style name of a character, for messages."""
    names = {0: "NUL", 7: "bell", 8: "backspace", 13: "carriage return", 27: "escape"}
    code = ord(char)
    name = names.get(code, "control character" if code < 0xD800 else "lone surrogate")
    return f"U+{code:04X} ({name})"


def check_prose(field: str, text: str) -> str:
    """``text`` as given, or InputProblem when it holds characters prose never needs."""
    found = _PROSE_FORBIDDEN.search(text) or _SURROGATE.search(text)
    if found is not None:
        where = found.start()
        raise InputProblem(
            f"{field} contains {describe_character(found.group())} at character {where}: "
            "only newlines and tabs are allowed among control characters"
        )
    return text


def check_name(field: str, text: str) -> str:
    """A name that ends up in a command line, a ref or a path: no control characters."""
    if has_control_character(text) or _SURROGATE.search(text):
        raise InputProblem(f"{field} {text!r} contains a control character")
    return text


def check_option_safe(field: str, text: str) -> str:
    """A name that goes on a command line: no control characters, no leading '-'."""
    check_name(field, text)
    if text.startswith("-"):
        raise InputProblem(
            f"{field} {text!r} starts with '-', where a command would read an option"
        )
    return text


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


# what prose may hold around its words (every other control character is refused)
BLANK = " \t\n"


def _visible(ch: str) -> bool:
    return not ch.isspace() and unicodedata.category(ch) != "Cf"


def check_goal(text: str) -> str:
    """The goal without surrounding blanks; refuses blank goals, control characters and
    oversized ones."""
    check_prose("the goal", text)
    size = utf8_size(text)
    if size > GOAL_MAX_BYTES:
        raise InputProblem(
            f"the goal is {size} bytes of UTF-8, more than the limit of {GOAL_MAX_BYTES}: "
            "shorten it, or put the details in a file in the repository and name that file"
        )
    stripped = text.strip(BLANK)
    if not any(_visible(ch) for ch in stripped):  # no-break and zero-width spaces are blank too
        raise InputProblem(
            'the goal is empty: say what to change, e.g. "fix the typo in README.md"'
        )
    return stripped


def check_model(name: str) -> str:
    """A model name, as ``baro_shared.backends.model_problem`` defines one (the rule the
    plan's per-story models follow too), with the flag-like case spelled out."""
    if name.startswith("-"):
        raise InputProblem(
            f"the model name {name!r} starts with '-', so an agent CLI would read it as an "
            "option: pass the model's name (e.g. --model claude-sonnet-4-5)"
        )
    problem = model_problem(name)
    if problem is not None:
        raise InputProblem(problem)
    return name


def check_slug(slug: str) -> str:
    if not _SLUG.fullmatch(slug):
        raise InputProblem(
            f"the slug {slug!r} is not usable: lowercase letters, digits and '-', "
            f"at most {SLUG_MAX} characters"
        )
    return slug


def check_repo(repo: s.RepoSource) -> s.RepoSource:
    """A repository source: its location by kind, and its ref and commit if given."""
    try:
        if repo.kind == "url":
            sources.check_git_url(repo.location)
        elif repo.kind == "bundle":
            sources.check_object_name(repo.location)
        else:
            check_name("the repository path", repo.location)
            if not repo.location:
                raise InputProblem("the repository path is empty")
        if repo.ref is not None:
            sources.check_ref(repo.ref)
        if repo.commit is not None:
            check_option_safe("the commit", repo.commit)
    except sources.SourceProblem as exc:
        raise InputProblem(str(exc)) from None
    return repo


def command_problem(command: s.Command) -> str | None:
    """Why a command read off the bus cannot be carried out as it is, or None.

    The conductor only sends what passed the door; this catches a producer that did not,
    before a worker hands a NUL byte to a subprocess on every redelivery.
    """
    from baro_shared.plan import PlanError, clean_story

    try:
        goal = getattr(command, "goal", None)
        if isinstance(goal, str):
            check_prose("the goal", goal)
        model = getattr(command, "model", None)
        if isinstance(model, str):
            check_model(model)
        story = getattr(command, "story", None)
        if isinstance(story, s.Story):
            clean_story(story)
        repo = getattr(command, "repo", None) or getattr(command, "source", None)
        if isinstance(repo, s.RepoSource):
            check_repo(repo)
    except (InputProblem, PlanError) as exc:
        return str(exc)
    return None


def check_seconds(field: str, value: float) -> float:
    """A timeout: a finite number of seconds from 1 to ``MAX_TIMEOUT_S``."""
    if not math.isfinite(value):
        raise InputProblem(f"{field} is {value}, not a number of seconds (e.g. 1800)")
    if not 1 <= value <= MAX_TIMEOUT_S:
        raise InputProblem(f"{field} is {value:g} s: give 1 to {MAX_TIMEOUT_S:g} seconds")
    return value


def check_submission(request: s.RunSubmitted) -> s.RunSubmitted:
    """Every text field of a submitted run, checked as the CLI and the API check them.

    What the conductor applies to a ``RunSubmitted`` it reads off the bus, so a producer
    that skipped the door (another version, a hand-made message) gets a refused run, not
    an agent that fails on every delivery.
    """
    from baro_shared.plan import PlanError, validate_plan  # plan.py uses this module's limits

    check_goal(request.goal)
    check_repo(request.repo)
    check_seconds("the story timeout", request.limits.story_timeout_s)
    check_seconds("the stall timeout", request.limits.stall_timeout_s)
    check_option_safe("the backend", request.backend)
    if request.model is not None:
        check_model(request.model)
    if request.slug is not None:
        check_slug(request.slug)
    if request.continue_branch is not None:
        try:
            sources.check_ref(request.continue_branch)
        except sources.SourceProblem as exc:
            raise InputProblem(f"the branch to continue: {exc}") from None
    if request.submitted_by is not None:
        check_name("submitted_by", request.submitted_by)
    if request.agent_script is not None:
        check_prose("the agent script", request.agent_script)
    if request.plan is not None:
        try:
            validate_plan(request.plan)
        except PlanError as exc:
            raise InputProblem(f"the plan: {exc}") from None
    return request
