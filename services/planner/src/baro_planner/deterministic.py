"""Plans for goals that already carry their structure, made without a model call.

- focused: the goal itself, as one story.
- numbered steps ("1. ... 2. ...") or "first ... then ... finally ...": a chain, one story
  per step, in the order written.
- one action over an enumeration of paths ("add tests for a.py, b.py and c.py"), or a
  bulleted list whose every item names a path: one story per unit, each with the paths it
  names as its write surface.

Anything else gives None: the goal needs a model to decompose it. Nothing here adds work.
Every story's text is a piece of the goal; its description carries the whole goal for
context with a line saying which part is this story's. When the goal has more steps or
units than the story cap allows, neighbours are grouped (in order) so the plan fits.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from baro_shared.plan import PlanError, validate_plan
from baro_shared.schemas import Caps, Mode, Story
from baro_shared.surfaces import UnsafePath, is_glob, normalize

_TITLE_LIMIT = 100

# ---- numbered steps: "1. x", "2) y", "(3) z", "Step 4: w"
_STEP_MARKER = re.compile(
    r"(?:(?<=\s)|^)(?:\((?P<paren>\d{1,2})\)|(?P<dot>\d{1,2})[.)]|step\s+(?P<word>\d{1,2})\s*[:.)-]?)(?=\s)",
    re.IGNORECASE,
)

# ---- "first ..., then ..., finally ..."
_FIRST = re.compile(
    r"(?:^|(?<=[.:;,!?\n]))\s*(?:first(?:ly)?|to (?:begin|start)(?: with)?|start by)(?![-\w])[,:]?\s*",
    re.IGNORECASE,
)
_THEN = re.compile(
    r"(?:[,;.!?:]\s*(?:and\s+)?|\s*\n\s*|\s+and\s+)"
    r"(?:then|next(?!\s+to\b)|after that|afterwards?|finally)\b[,:]?\s*",
    re.IGNORECASE,
)

# ---- enumerations
_BULLET = re.compile(r"^[ \t]*[-*•][ \t]+(?P<text>\S.*)$")
_TOKEN = re.compile(r"(?<![\w./~:@`-])`?(?P<token>[\w.*?/\[\]-]+)`?")
_LIST_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+|&\s*)?|\s+(?:and|&)\s+")
# Words that tie the units of an enumeration together: one story per unit would split
# what the goal asks to be done as one change.
_COUPLING = re.compile(
    r"\b(?:shar(?:e|ed|ing)|between|together|consistent(?:ly)?|merg(?:e|ing)|combin(?:e|ing)|"
    r"unif(?:y|ied)|mov(?:e|ing)|renam(?:e|ing)|extract\w*|across|dedup\w*)\b",
    re.IGNORECASE,
)
# In the text around an inline list, a further clause ("... and update the docs") is work
# that one story per unit would repeat in every unit.
_FURTHER_CLAUSE = re.compile(r"\b(?:and|or|plus)\b|[,;]", re.IGNORECASE)
_ORDER_WORDS = re.compile(
    r"\b(?:then|after that|afterwards?|finally|first|before|once|also|additionally)\b",
    re.IGNORECASE,
)
_TEST_WORDS = re.compile(r"\b(?:tests?|testing|unit[- ]tests?|coverage)\b", re.IGNORECASE)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_EXTENSIONS = _word_set(
    """py pyi pyx js jsx ts tsx mjs cjs vue svelte astro go rs rb java kt kts scala swift c h
    cc cpp cxx hpp hh cs fs php pl lua r dart ex exs erl hs ml clj nix zig sh bash zsh fish
    ps1 bat sql md mdx rst txt adoc toml yaml yml json jsonc json5 xml html htm css scss sass
    less lock cfg ini conf env proto graphql gql tf hcl gradle properties csv tsv ipynb
    dockerfile mk cmake tex svg"""
)
_BARE_NAMES = _word_set(
    """makefile dockerfile justfile procfile gemfile rakefile vagrantfile license readme
    changelog contributing codeowners"""
)
_NOT_PATHS = _word_set(
    """and/or either/or read/write input/output client/server true/false yes/no on/off i/o
    n/a w/o ci/cd ui/ux tcp/ip pros/cons get/set async/await request/response open/close
    start/stop before/after he/she frontend/backend node.js vue.js next.js nuxt.js react.js
    express.js nest.js d3.js three.js chart.js ember.js angular.js alpine.js solid.js p5.js
    socket.io asp.net e.g i.e etc"""
)


@dataclass(frozen=True)
class _Unit:
    """One step or one unit of the goal: its own text and the paths it names."""

    text: str
    surface: tuple[str, ...]
    label: str  # the path (units) or the step text (steps), for grouped titles


def plan_goal(
    goal: str, mode: Mode, caps: Caps, files: list[str] | None = None
) -> list[Story] | None:
    """A plan straight from the goal's own structure, or None when it has none."""
    text = goal.strip()
    if not text:
        raise PlanError("the goal is empty")
    if mode == "focused":
        return validate_plan([Story(id="S1", title=_title(text), description=text)])
    cap = max(1, caps.max_stories)
    steps = _numbered_steps(text) or _first_then_steps(text)
    if steps:
        units = [_Unit(step, tuple(_paths_in(step, files)), step) for step in steps]
        return validate_plan(_chain_stories(units, text, cap))
    enumeration = _bulleted_units(text, files) or _listed_units(text, files)
    if enumeration:
        units, template = enumeration
        return validate_plan(_unit_stories(units, template, text, cap))
    return None


# --------------------------------------------------------------------------- steps


def _numbered_steps(text: str) -> list[str] | None:
    markers = []
    for m in _STEP_MARKER.finditer(text):
        number = int(m.group("paren") or m.group("dot") or m.group("word"))
        line_start = text[: m.start()].rsplit("\n", 1)[-1].strip() == ""
        markers.append((number, m.start(), m.end(), line_start))
    for candidates in ([mk for mk in markers if mk[3]], markers):
        sequence = []
        for number, start, end, _ in candidates:
            if number == len(sequence) + 1:
                sequence.append((start, end))
        if len(sequence) >= 2:
            bounds = [*(start for start, _ in sequence[1:]), len(text)]
            steps = [
                _clean(text[end:bound]) for (_, end), bound in zip(sequence, bounds, strict=True)
            ]
            if all(steps):
                return steps
    return None


def _first_then_steps(text: str) -> list[str] | None:
    opener = _FIRST.search(text)
    if opener is None:
        return None
    rest = text[opener.end() :]
    steps = [_clean(part) for part in _THEN.split(rest)]
    if len(steps) < 2 or not all(steps):
        return None
    return steps


# --------------------------------------------------------------------------- units


@dataclass(frozen=True)
class _Template:
    """The goal with its enumeration cut out: ``before`` + items + ``after``."""

    before: str
    after: str

    def with_items(self, items: Sequence[str]) -> str:
        return _clean(f"{self.before}{_join(list(items))}{self.after}")


def _listed_units(text: str, files: list[str] | None) -> tuple[list[_Unit], _Template] | None:
    """One action over an inline list of paths: "add tests for a.py, b.py and c.py"."""
    tokens = [(m.start(), m.end(), m.group("token")) for m in _TOKEN.finditer(text)]
    paths = [
        (s, e, _strip_punctuation(t))
        for s, e, t in tokens
        if _is_path(_strip_punctuation(t), files)
    ]
    runs: list[list[tuple[int, int, str]]] = []
    for item in paths:
        previous = runs[-1][-1] if runs else None
        if previous and _LIST_SEPARATOR.fullmatch(text[previous[1] : item[0]]):
            runs[-1].append(item)
        else:
            runs.append([item])
    lists = [run for run in runs if len(run) >= 2]
    if len(lists) != 1 or len(paths) != len(lists[0]):
        return None  # no list, several lists, or paths outside the list: not one action
    run = lists[0]
    start, end = run[0][0], run[-1][1]
    # the closing backtick or punctuation of the last item stays with the text after it
    end = start + len(text[start:end].rstrip(".,;:!?"))
    template = _Template(text[:start], text[end:])
    residue = f"{template.before} {template.after}"
    if not _clean(template.before) or any(
        rule.search(residue) for rule in (_COUPLING, _ORDER_WORDS, _FURTHER_CLAUSE)
    ):
        return None
    if re.search(r"[.!?]\s+\S|\n", _clean(residue)):
        return None  # more than one sentence: more than one action
    units = [
        _Unit(template.with_items([token]), tuple(_surface_for(token, residue, files)), token)
        for _, _, token in run
    ]
    return (units, template) if _distinct(units) else None


def _bulleted_units(text: str, files: list[str] | None) -> tuple[list[_Unit], None] | None:
    """A bulleted list whose every item names a path, with nothing after the list."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if _BULLET.match(line)), None)
    if first is None:
        return None
    bullets = []
    for line in lines[first:]:
        match = _BULLET.match(line)
        if match is None:
            return None  # text after (or between) the bullets may state more work
        bullets.append(match.group("text").strip())
    preamble = _clean("\n".join(lines[:first]))
    if len(bullets) < 2 or _COUPLING.search(preamble) or _ORDER_WORDS.search(preamble):
        return None
    units = []
    for bullet in bullets:
        named = _paths_in(bullet, files)
        if not named or _ORDER_WORDS.search(bullet):
            return None
        bare = _is_path(_strip_punctuation(bullet), files)
        own = f"{preamble.rstrip(':')}: {bullet}" if bare and preamble else bullet
        context = f"{preamble} {bullet}"
        surface = _unique(
            p for token in _path_tokens(bullet, files) for p in _surface_for(token, context, files)
        )
        units.append(_Unit(_clean(own), tuple(surface), _strip_punctuation(bullet)))
    return (units, None) if _distinct(units) else None


def _distinct(units: list[_Unit]) -> bool:
    return len({u.surface for u in units}) == len(units)


# --------------------------------------------------------------------------- paths


def _path_tokens(text: str, files: list[str] | None) -> list[str]:
    found = (_strip_punctuation(m.group("token")) for m in _TOKEN.finditer(text))
    return _unique(t for t in found if _is_path(t, files))


def _paths_in(text: str, files: list[str] | None) -> list[str]:
    """Repository paths the text names, resolved against the file list when given."""
    return _unique(p for token in _path_tokens(text, files) for p in _resolve(token, files))


def _is_path(token: str, files: list[str] | None) -> bool:
    if not token or token.lower() in _NOT_PATHS or token.startswith("/"):
        return False
    try:
        normalize(token)
    except UnsafePath:
        return False
    if files and (token in files or any(f.endswith("/" + token) for f in files)):
        return True
    name = token.rstrip("/").rsplit("/", 1)[-1]
    if "/" in token.rstrip("/"):
        return bool(re.fullmatch(r"[\w.*?\[\]-]+(?:/[\w.*?\[\]-]+)+/?", token))
    stem, dot, ext = name.rpartition(".")
    if dot and stem and ext.lower() in _EXTENSIONS:
        return not stem.replace(".", "").isdigit()
    return name.lower() in _BARE_NAMES or (token.endswith("/") and len(name) > 1)


def _resolve(token: str, files: list[str] | None) -> list[str]:
    """The repository paths a token names: itself when the repository has it (or it is
    new, a directory or a glob), else every file of that name in the repository."""
    path = normalize(token)
    if not files or is_glob(path) or path in files or any(f.startswith(path + "/") for f in files):
        return [path]
    same_name = sorted(f for f in files if f.endswith("/" + path))
    return same_name or [path]


def _surface_for(token: str, context: str, files: list[str] | None) -> list[str]:
    """The paths a unit may change; a unit about tests also owns its test files."""
    named = _resolve(token, files)
    if not _TEST_WORDS.search(context):
        return named
    return _unique([*named, *(t for path in named for t in _test_files(path, files))])


def _test_files(path: str, files: list[str] | None) -> list[str]:
    """Where the tests of ``path`` live (existing ones first), by the language's convention."""
    if is_glob(path):
        return []
    directory, name = posixpath.split(path)
    stem, dot, ext = name.rpartition(".")
    if (
        not dot
        or not stem
        or stem.startswith("test_")
        or stem.endswith(("_test", ".test", ".spec"))
    ):
        return []
    names = {f"test_{stem}.{ext}", f"{stem}_test.{ext}", f"{stem}.test.{ext}", f"{stem}.spec.{ext}"}
    existing = sorted(f for f in files or () if posixpath.basename(f) in names and f != path)
    if existing:
        return existing
    conventional = _conventional_test_file(directory, stem, ext, files)
    return [conventional] if conventional else []


def _conventional_test_file(
    directory: str, stem: str, ext: str, files: list[str] | None
) -> str | None:
    if ext == "py":
        for root in ("tests", "test"):
            if files is None or any(f.startswith(root + "/") for f in files):
                return f"{root}/test_{stem}.py"
        return posixpath.join(directory, f"test_{stem}.py")
    if ext == "go":
        return posixpath.join(directory, f"{stem}_test.go")
    if ext in {"js", "jsx", "ts", "tsx", "mjs", "cjs"}:
        return posixpath.join(directory, f"{stem}.test.{ext}")
    return None


# --------------------------------------------------------------------------- stories


def _chain_stories(steps: list[_Unit], goal: str, cap: int) -> list[Story]:
    total = len(steps)
    stories: list[Story] = []
    first_number = 1
    for index, batch in enumerate(_batches(steps, cap), 1):
        numbers = range(first_number, first_number + len(batch))
        first_number += len(batch)
        if len(batch) == 1:
            title = _title(batch[0].text)
            scope = f"This is step {numbers[0]} of {total} of the goal below"
            body = batch[0].text
        else:
            title = _title(
                f"Steps {numbers[0]}-{numbers[-1]}: " + "; ".join(u.label for u in batch)
            )
            scope = f"These are steps {numbers[0]}-{numbers[-1]} of {total} of the goal below"
            body = "\n".join(f"{n}. {u.text}" for n, u in zip(numbers, batch, strict=True))
        description = (
            f"{body}\n\n{scope}; the other steps are separate stories, run one after "
            f"another in order.\n\nGoal:\n{goal}"
        )
        stories.append(
            Story(
                id=f"S{index}",
                title=title,
                description=description,
                depends_on=[f"S{index - 1}"] if index > 1 else [],
                write_surface=_unique(p for u in batch for p in u.surface),
            )
        )
    return stories


def _unit_stories(
    units: list[_Unit], template: _Template | None, goal: str, cap: int
) -> list[Story]:
    stories: list[Story] = []
    for index, batch in enumerate(_batches(units, cap), 1):
        surface = _unique(p for u in batch for p in u.surface)
        if len(batch) == 1:
            body = batch[0].text
        elif template is not None:
            body = template.with_items([u.label for u in batch])
        else:
            body = "\n".join(f"- {u.text}" for u in batch)
        title = _title(
            body if template is not None or len(batch) == 1 else "; ".join(u.text for u in batch)
        )
        others = [u.label for u in units if u not in batch]
        description = (
            f"{body}\n\nThis is one of {len(units)} independent parts of the goal below; "
            f"{_join(others)} {'is' if len(others) == 1 else 'are'} handled by other stories."
            f"\n\nGoal:\n{goal}"
        )
        stories.append(
            Story(id=f"S{index}", title=title, description=description, write_surface=surface)
        )
    return stories


def _batches(units: list[_Unit], cap: int) -> list[list[_Unit]]:
    """Contiguous groups, as even as possible, at most ``cap`` of them."""
    count = min(cap, len(units))
    size, extra = divmod(len(units), count)
    batches, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        batches.append(units[start:end])
        start = end
    return batches


# --------------------------------------------------------------------------- text


def _clean(text: str) -> str:
    """A piece of the goal without surrounding whitespace, joiners or separators."""
    text = " ".join(text.split())
    text = re.sub(r"^(?:and|then)\b[,:]?\s*", "", text, flags=re.IGNORECASE)
    return text.strip(" ,;")


def _title(text: str) -> str:
    line = _clean(text.splitlines()[0] if text.strip() else text).rstrip(".:;,!")
    if re.match(r"[a-z]+\b(?![./`])", line):  # a word, not a path or an identifier
        line = line[:1].upper() + line[1:]
    if len(line) <= _TITLE_LIMIT:
        return line
    cut = line[: _TITLE_LIMIT - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _strip_punctuation(token: str) -> str:
    return token.strip("`").rstrip(".,;:!?)")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
