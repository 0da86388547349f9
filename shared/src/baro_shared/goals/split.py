"""The one reading of a goal's own structure: its independent units, or its ordered steps.

The intake proposes parallel only for a goal this module splits into units, and
sequential only for one it splits into steps; the planner makes one story per part. So a
goal the planner can split is proposed as parallel, and one it cannot is not.

- **units**: two or more things the goal names in a list (inline, bulleted, in
  parentheses, "a X endpoint, a Y endpoint ...", "the four mappers: a, b, c and d"),
  one action over all of them, nothing tying them together, no further work besides
  them. Each unit's write surface is what its story creates or changes, resolved
  against the repository's files (see ``layout``); units whose surfaces would overlap
  are not independent.
- **steps**: "first ... then ... finally", numbered lines, "after that", or three or
  more actions under a feature head ("Add X: do a, do b, do c"). One story per step, in
  order.

Pure: the goal text and (optionally) the repository's file list in, parts out.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from baro_shared.goals.layout import Layout, is_test_file, singular, singular_word, split_ext
from baro_shared.goals.register import creates_units, registered_kind, registry_files
from baro_shared.goals.shape import (
    ALREADY_EXISTS,
    Steps,
    independence_cue,
    is_bug_reproduction,
    ordered_steps,
    shared_surface_cue,
)
from baro_shared.goals.text import (
    CLASS_NAME,
    LANGUAGE_CODES,
    REGISTER_VERBS,
    SENTENCE_BREAK,
    bounded,
    clauses,
    negated,
    split_trace,
    verb_of,
    without_urls,
)
from baro_shared.goals.units import (
    Group,
    NamedUnits,
    Unit,
    find_atoms,
    is_directory,
    named_units,
)
from baro_shared.surfaces import UnsafePath, surfaces_overlap

# Words that tie the units of an enumeration together: one story per unit would split
# what the goal asks to be done as one change ("the same X as Y" only names a model).
_COUPLING = re.compile(
    r"\b(?:shar(?:e|es|ed|ing)|between|together|consistent(?:ly)?|merg(?:e|ing)|combin(?:e|ing)|"
    r"unif(?:y|ied)|mov(?:e|ing)|renam(?:e|ing)|extract\w*|across|dedup\w*|"
    r"same(?!(?:[ \t]+[\w-]+){0,3}[ \t]+as\b))\b",
    re.I,
)
# Verbs that constrain how the units are done rather than adding work of their own.
_CONSTRAINT = re.compile(
    r"^(?:and\s+|also\s+|but\s+)?(?:make\s+sure|ensure|keep|use|follow|match|avoid|reuse|"
    r"don'?t|do\s+not|never|put|place|name|give|write\s+(?:each|one)|mirror|stick)\b",
    re.I,
)
_DO_THEM = re.compile(
    r"(?:and\s+|then\s+|please\s+|just\s+)*(?!fix|repair|debug)[a-z]+\s+"
    r"(?:them|both|each(?:\s+one)?|all\s+of\s+them|those)"
    r"(?:\s+(?:separately|independently|in\s+parallel))?",
    re.I,
)
_REGISTER_THEM = re.compile(
    rf"^(?:and\s+|then\s+|also\s+)*{REGISTER_VERBS}\s+"
    r"(?:them|each(?:\s+one)?|it|all(?:\s+of\s+them)?|both)\b",
    re.I,
)
_CLAUSE_BREAK = re.compile(
    r"[;,\n:]|\.(?=\s|$)|\s[—\u2013]\s|(?<!\s)\s+(?=(?:and|then|also|plus)\s+[a-z])", re.I
)
# what a unit comes with, listed: "each with index and show actions"
_WITH_LIST = re.compile(r"(?:each\s+)?(?:with|having|including)\s", re.I)
_AND = re.compile(r"\band\s+", re.I)
_LEADING_EACH = re.compile(r"^each\s+", re.I)
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?](?=\s|$)|$)", re.M)
_TEST_WORK = re.compile(
    r"\b(?:(?:unit|integration|property|end-to-end|e2e|regression|smoke|snapshot|golden)[ -])?"
    r"tests?\b|\btest\s+(?:files?|suites?|cases?)\b|\bspecs?\b|\bcoverage\b",
    re.I,
)
# Besides tests, the goal changes the code under test.
_CHANGES_CODE = re.compile(
    r"\b(?:fix(?!ture)\w*|refactor\w*|chang(?:e|es|ing)|modif\w+|updat\w+|adjust\w*|rewrit\w+|"
    r"clean\s+up|type\s+hints?|docstrings?|logging|implement\w*|port(?:s|ing)?|convert\w*|"
    r"migrat\w+|remov\w+|delet\w+|make\s+\S+\s+testable|bugs?)\b",
    re.I,
)
# "convert a.js and b.js to TypeScript", "port the scripts to Python": each unit's file
# gets a sibling in the language it moves to
_TARGET_LANGUAGE = re.compile(
    r"\b(?:convert\w*|port(?:s|ed|ing)?|rewrit\w+|migrat\w+|translat\w+|mov(?:e|es|ed|ing))\b"
    r"[^.\n;]*?\b(?:to|into|in)\s+(typescript|ts|javascript|js|python|go|golang|rust|kotlin|"
    r"java|ruby|swift)\b(?!\.?[\w/-])",
    re.I,
)
_LANGUAGE_EXTENSIONS = {
    "typescript": ".ts", "ts": ".ts", "javascript": ".js", "js": ".js", "python": ".py",
    "go": ".go", "golang": ".go", "rust": ".rs", "kotlin": ".kt", "java": ".java",
    "ruby": ".rb", "swift": ".swift",
}  # fmt: skip
# "Storybook stories for the Header and Footer components": each component's stories file
_STORY_WORK = re.compile(r"\bstorybook\b|\bstories[ \t]+for\b", re.I)
# a component file keeps its markup in the other language
_MARKUP_TWINS = {(".jsx", ".ts"): ".tsx", (".tsx", ".js"): ".jsx"}
_END_TO_END = re.compile(r"\b(?:e2e|end-to-end|playwright|cypress)\b", re.I)
_TEST_DIR = re.compile(r"(?:^|/)(?:tests?|specs?|__tests__|e2e|integration)(?:/|$)", re.I)
_EXT_HINTS = (
    (re.compile(r"\bjson\b", re.I), ".json"),
    (re.compile(r"\bya?ml\b", re.I), ".yml"),
    (re.compile(r"\bmarkdown\b|\bpages?\b|\bguides?\b|\.md\b", re.I), ".md"),
    (re.compile(r"\btypescript\b", re.I), ".ts"),
    (re.compile(r"\bspec\s+files?\b", re.I), ".spec"),
)
_ALTERNATIVES = re.compile(r"(?:^|[\s,])(?:or|either)\s", re.I)


@dataclass(frozen=True, slots=True)
class Part:
    """One story's worth of the goal: its own text and the files it may change."""

    label: str  # the unit as named ("a.py", "POST /users") or the step's summary
    text: str  # the goal's words for this part alone
    surface: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GoalSplit:
    """A goal read for its structure. ``kind`` is None when it has none to split along."""

    kind: Literal["units", "steps"] | None
    parts: tuple[Part, ...]
    noun: str  # what the parts are: "files", "endpoints", "steps", ...
    units: NamedUnits
    steps: Steps
    prose: str
    head: str | None = None  # the feature the steps build, or the goal's own first line
    refused: str | None = None  # why the named units are not independent, when they are not
    cue: str | None = None  # the independence cue ("each", "its own"), if any
    # New endpoints or commands the application must register (``goals.register``), and
    # the files it registers them in (empty when the repository's files do not say).
    registers: bool = False
    registry: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.parts)

    def text_of(self, indices: Sequence[int]) -> str:
        """The goal's words for several units together (when a cap groups them)."""
        if self.kind != "units" or self.noun == "tasks":
            return "\n".join(f"- {self.parts[i].text}" for i in indices)
        chosen = [self.units.units[i] for i in indices]
        return units_text(self.prose, chosen, self.units)


def _prose(goal: str) -> str:
    return without_urls(split_trace(bounded(goal)).prose)


def split_goal(goal: str, files: Sequence[str] | None = None) -> GoalSplit:
    """The goal's independent units or ordered steps (see the module doc)."""
    return split_prose(_prose(goal), files)


def split_prose(prose: str, files: Sequence[str] | None = None) -> GoalSplit:
    """``split_goal`` for a goal already without its links and pasted traces."""
    units = named_units(prose)
    steps = ordered_steps(prose)
    cue = independence_cue(prose)
    layout = Layout(files)
    if is_bug_reproduction(prose):  # numbered steps to reproduce describe a bug, not a plan
        return GoalSplit(None, (), "units", units, steps, prose, cue=cue)
    if steps.ordered and steps.count >= 2 and not _then_registers(steps, units):
        return _steps(prose, steps, units, layout, cue)
    if units.count >= 2:
        refused = _refusal(prose, units)
        if refused is None:
            creates = creates_units(prose, units)
            parts = _unit_parts(prose, units, layout, creates)
            refused = _overlapping(parts) or _one_sequence(parts, units.kind, layout)
            if refused is None:
                registers = creates and registered_kind(units.kind)
                new_files = (path for part in parts for path in part.surface)
                registry = tuple(registry_files(layout, new_files)) if registers else ()
                return GoalSplit(
                    "units", parts, units.kind, units, steps, prose, cue=cue,
                    registers=registers, registry=registry,
                )  # fmt: skip
        return GoalSplit(None, (), units.kind, units, steps, prose, refused=refused, cue=cue)
    if steps.listed and cue:
        tasks = _independent_tasks(prose, steps, layout, cue)
        if tasks is not None:
            return tasks
    if steps.listed:
        return _steps(prose, steps, units, layout, cue)
    return GoalSplit(None, (), "units", units, steps, prose, cue=cue)


def _then_registers(steps: Steps, units: NamedUnits) -> bool:
    """ "Add a health router and a metrics router, then register both in main.py": the
    only later step registers the new units, which their registering story does."""
    return (
        steps.count == 2
        and units.count >= 2
        and registered_kind(units.kind)
        and _REGISTER_THEM.match(steps.summaries()[-1]) is not None
    )


def _steps(
    prose: str, steps: Steps, units: NamedUnits, layout: Layout, cue: str | None
) -> GoalSplit:
    parts = tuple(
        Part(label=summary, text=text, surface=tuple(_paths_in(text, layout)))
        for text, summary in zip(steps.parts, steps.summaries(), strict=True)
    )
    return GoalSplit("steps", parts, "steps", units, steps, prose, head=steps.head, cue=cue)


def _independent_tasks(prose: str, steps: Steps, layout: Layout, cue: str) -> GoalSplit | None:
    """Listed actions the goal says are unrelated ("- remove the dead code in a.py - fix
    the flaky test in tests/test_b.py ... These are unrelated"): one unit each, when each
    names the files it changes and no two name the same ones."""
    parts = tuple(
        Part(label=summary, text=text, surface=tuple(_paths_in(text, layout)))
        for text, summary in zip(steps.parts, steps.summaries(), strict=True)
    )
    if not all(part.surface for part in parts) or _overlapping(parts):
        return None
    if shared_surface_cue(prose):
        return None
    units = NamedUnits(tuple(Unit(p.label, p.label.lower(), "", ()) for p in parts), "tasks", ())
    return GoalSplit("units", parts, "tasks", units, steps, prose, head=steps.head, cue=cue)


def _paths_in(text: str, layout: Layout) -> list[str]:
    out: list[str] = []
    for atom in find_atoms(text):
        if atom.kind not in ("path", "dir"):
            continue
        try:
            out.extend(layout.resolve(_bare(atom.label)))
        except UnsafePath:
            continue
    # "update CartTest to cover both": a class named as its one file is named
    out.extend(f for m in CLASS_NAME.finditer(text) if (f := layout.class_file(m.group(1))))
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- refusals


def _refusal(prose: str, units: NamedUnits) -> str | None:
    """Why the named units must not become one story each, or None when they may."""
    shared = shared_surface_cue(prose)
    if shared:
        return f'they share one write surface ("{shared}")'
    if units.shared_file:
        return f"the work goes into one file ({units.shared_file})"
    for sentence in _SENTENCE.findall(_masked(prose)):
        coupling = next(
            (m for m in _COUPLING.finditer(sentence) if not negated(sentence, m.start())), None
        )
        if coupling and not ALREADY_EXISTS.search(sentence):
            return f'the units are changed together ("{coupling.group(0)}")'
    # "either a.py or b.py" offers a choice; "no tests for a.py or b.py" lists them all
    if any(
        _ALTERNATIVES.search(_between(prose, group)) and not negated(prose, group.start)
        for group in units.groups
    ):
        return "the list names alternatives, not units"
    extra = _extra_work(prose, units)
    if extra:
        return f'the goal asks for more than the units ("{extra}")'
    if any(g.source == "clauses" for g in units.groups) and not independence_cue(prose):
        # "a test to test_a.py and a fixture to conftest.py": the test may use the fixture
        return "each file gets a different change and nothing says they are apart"
    return None


def _between(prose: str, group: Group) -> str:
    return " ".join(
        prose[a.end : b.start] for a, b in zip(group.atoms, group.atoms[1:], strict=False)
    )


def _masked(prose: str) -> str:
    """The goal with every path, endpoint and backticked name blanked out (same length)."""
    chars = list(prose)
    for atom in find_atoms(prose):
        chars[atom.start : atom.end] = "x" * (atom.end - atom.start)
    return "".join(chars)


def _extra_work(prose: str, units: NamedUnits) -> str | None:
    """A clause that asks for work besides the units ("and update the changelog").

    In the sentence holding the list, what comes before the list is the action itself
    ("Add tests for"); after it, and in every other sentence, a clause that starts with
    an action verb is more work, unless it says how each unit is done ("each in its own
    file", "put each flow in its own spec file").
    """
    members = [(a.start, a.end) for g in units.groups for a in g.atoms]
    for group in units.groups:
        if group.source != "items":
            continue
        for atom in group.atoms:  # an item's line is that unit's own action
            line_end = prose.find("\n", atom.start)
            members.append((atom.start, line_end if line_end != -1 else len(prose)))
        intro_end = prose.rfind("\n", 0, group.start)  # the line introducing the list too
        if intro_end > 0:
            members.append((prose.rfind("\n", 0, intro_end) + 1, intro_end))
    masked = _masked(prose)
    for sentence in _SENTENCE.finditer(masked):
        inside = [(s, e) for s, e in members if sentence.start() <= s < sentence.end()]
        after = max((e for _, e in inside), default=sentence.start())
        text = masked[after : sentence.end()]
        position = 0
        previous = ""
        for raw in _CLAUSE_BREAK.split(text):
            start = text.find(raw, position)
            position = start + len(raw)
            clause = raw.strip(" \t.,;:()")
            # "each with index and show actions": the "and" goes on with what each has
            goes_on = bool(_WITH_LIST.match(previous)) and clause[:4].lower() == "and "
            previous = clause
            if not clause or verb_of(clause) is None or goes_on:
                continue  # a location, a format, a remark; "with index and show actions"
            if independence_cue(clause) or _CONSTRAINT.match(clause):
                continue
            if _REGISTER_THEM.match(clause) and registered_kind(units.kind):
                continue  # the registering story's work ("and include them in the app")
            if _DO_THEM.fullmatch(clause):
                continue  # "… have no tests yet. Add them": the units themselves (a
                # failure "fixed in both" may have one cause: that stays one change)
            original = prose[after + start : after + position]
            return " ".join(original.split()).strip(" .,;:")
    return None


def _one_sequence(parts: tuple[Part, ...], kind: str, layout: Layout) -> str | None:
    """Migrations, and new files in a directory numbered in one sequence, each take the
    next number: side by side, every story would take the same one."""
    if singular(kind) == "migration":
        return "migrations form one ordered sequence (each takes the next number)"
    for part in parts:
        for path in part.surface:
            example = layout.numbered_file(path)
            if example is not None:
                folder = path.rpartition("/")[0] or "."
                return (
                    f"the files in {folder}/ form one numbered sequence ({example}): side by "
                    "side, each would take the same next number"
                )
    return None


def _overlapping(parts: tuple[Part, ...]) -> str | None:
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            if a.surface and b.surface and surfaces_overlap(list(a.surface), list(b.surface)):
                return f"{a.label} and {b.label} would change the same files"
    return None


# --------------------------------------------------------------------------- units


def _bare(label: str) -> str:
    return label.strip("`").rstrip(".,;:!?)")


def _ext_hint(prose: str) -> str | None:
    for pattern, ext in _EXT_HINTS:
        if pattern.search(prose):
            return ext
    return None


def _unit_parts(prose: str, units: NamedUnits, layout: Layout, creates: bool) -> tuple[Part, ...]:
    masked = _masked(prose)
    test_work = bool(_TEST_WORK.search(masked))
    # a unit the goal creates is written along with its tests ("a Footer component ...
    # with a test")
    changes_code = creates or bool(_CHANGES_CODE.search(masked))
    test_container = next((c for c in units.containers if _TEST_DIR.search(c)), None)
    if test_container is None and _END_TO_END.search(masked):
        test_container = layout.end_to_end_tests()
    beside = (layout.place_of(c) for c in units.containers if c != test_container)
    places = [place for place in beside if place] or ([test_container] if test_container else [])
    hint = _ext_hint(masked)
    language = _TARGET_LANGUAGE.search(masked)
    target = _LANGUAGE_EXTENSIONS[language.group(1).lower()] if language else None
    story_work = bool(_STORY_WORK.search(masked))
    translated = _translated_document(prose, units, layout)
    parts = []
    for unit in units.units:
        code = LANGUAGE_CODES.get(unit.label.lower()) if translated else None
        if translated and code:
            surface = [_translation_file(translated, code, layout)]
        else:
            surface = _surface(unit, units.kind, places, test_container, hint, layout)
        if test_work:
            surface = _with_tests(surface, test_container, changes_code, layout)
        if target is not None:
            surface = _with_translations(surface, target)
        if story_work and not test_work:
            surface = _with_stories(surface, changes_code)
        parts.append(Part(unit.label, units_text(prose, [unit], units), tuple(surface)))
    return tuple(parts)


def _surface(
    unit: Unit,
    kind: str,
    places: list[str],
    test_container: str | None,
    hint: str | None,
    layout: Layout,
) -> list[str]:
    paths = [a for a in unit.atoms if a.kind in ("path", "dir")]
    files = [a for a in paths if not is_directory(a) and "/" not in a.label]
    own_dir = next((a for a in paths if is_directory(a)), None)
    if own_dir is not None and files:  # "for internal/store …, in store_bench_test.go"
        paths, places = files, [_bare(own_dir.label)]
    out: list[str] = []
    if paths:
        for atom in paths:
            token = _bare(atom.label)
            if places and "/" not in token.rstrip("/"):
                token = f"{places[0].rstrip('/')}/{token}"  # "under cli/commands/: doctor.py"
            try:
                out.extend(layout.resolve(token))
            except UnsafePath:
                continue
        return list(dict.fromkeys(out))
    name = _unit_name(unit)
    if not name:
        return []
    test_class = layout.test_class_file(name)  # "an OrderTest for …": the Order class's tests
    if test_class is not None:
        return [test_class]
    test = test_container is not None and (hint == ".spec" or test_container in places)
    containers = [test_container] if test and test_container else places
    return layout.resolve_name(
        name, singular(kind), containers, hint if hint != ".spec" else None, test=test
    )


_LOCALE_STEM = re.compile(r"[a-z]{2}(?:[-_][A-Za-z]{2})?")
_README = re.compile(r"\breadme\b", re.I)


def _translated_document(prose: str, units: NamedUnits, layout: Layout) -> str | None:
    """The file a goal's translations translate ("of locales/en.json", "the README"), when
    its units are translations named by language."""
    if singular(units.kind) != "translation":
        return None
    members = {a.label for unit in units.units for a in unit.atoms}
    for atom in find_atoms(prose):
        label = _bare(atom.label)
        if atom.kind == "path" and label not in members and split_ext(label)[1]:
            try:
                return layout.resolve(label)[0]
            except UnsafePath:
                return None  # ".git/description.md": nothing a story may write beside
    if _README.search(prose):
        readme = [f for f in layout.in_dir("") if split_ext(f)[0].lower() == "readme"]
        return readme[0] if readme else "README.md"
    return None


def _translation_file(document: str, code: str, layout: Layout) -> str:
    """Where a translation into ``code`` goes: ``locales/en.json`` -> ``locales/de.json``,
    ``docs/intro.md`` -> ``docs/de/intro.md`` where the repository keeps translations in
    language directories (``docs/fr/``), else ``README.md`` -> ``README.de.md``."""
    directory, slash, name = document.rpartition("/")
    languages = set(LANGUAGE_CODES.values())
    if any(posixpath.basename(d) in languages for d in layout.subdirs(directory)):
        return f"{directory}{slash}{code}/{name}"
    stem, ext = split_ext(name)
    translated = f"{code}.{ext}" if _LOCALE_STEM.fullmatch(stem) else f"{stem}.{code}.{ext}"
    return f"{directory}{slash}{translated}"


def _unit_name(unit: Unit) -> str:
    atom = unit.atoms[0]
    if atom.kind == "endpoint":
        return atom.stem
    label = _bare(atom.label)
    if atom.kind == "command":
        return label.split()[-1]
    return label if re.fullmatch(r"[\w.+-]+", label) else ""


def _file_ext(path: str) -> tuple[str, str] | None:
    """A surface entry's path without its extension, and the extension; None for a
    directory, a glob or a file without one."""
    if "*" in path or path.endswith("/"):
        return None
    directory, slash, name = path.rpartition("/")
    stem, ext = split_ext(name)
    return (f"{directory}{slash}{stem}", ext) if ext else None


def _with_translations(surface: list[str], ext: str) -> list[str]:
    """A unit moving to another language owns its file there too: ``a.js`` and ``a.ts``
    (the old one goes or stays, as the story decides)."""
    out: list[str] = []
    for path in surface:
        out.append(path)
        split = _file_ext(path)
        if split is not None:
            out.append(split[0] + _MARKUP_TWINS.get((f".{split[1]}", ext), ext))
    return list(dict.fromkeys(out))


def _with_stories(surface: list[str], changes_code: bool) -> list[str]:
    """A unit of Storybook work owns the stories file beside its component
    (``Header.stories.tsx``), and the component only when the goal also changes it."""
    out: list[str] = []
    for path in surface:
        split = _file_ext(path)
        if split is None or split[0].endswith(".stories"):
            out.append(path)
            continue
        out.append(f"{split[0]}.stories.{split[1]}")
        if changes_code:
            out.append(path)
    return list(dict.fromkeys(out))


def _with_tests(
    surface: list[str], container: str | None, changes_code: bool, layout: Layout
) -> list[str]:
    """A unit of test work owns its new test file, and the code under test only when the
    goal also asks to change that code."""
    out: list[str] = []
    for path in surface:
        if is_test_file(path) or path.endswith("/**") or "*" in path:
            out.append(path)  # a test file itself, or a whole package (its tests live in it)
            continue
        if container and _TEST_DIR.search(path):
            out.append(path)
            continue
        test = layout.test_file(path, container)
        if test is None:
            out.append(path)
            continue
        out.append(test)
        if changes_code:
            out.append(path)
    return list(dict.fromkeys(out))


def units_text(prose: str, chosen: Sequence[Unit], units: NamedUnits) -> str:
    """The goal's words for some of its units: the sentence holding the list, with only
    these units in it (bulleted items keep their own lines, after the line introducing
    them)."""
    # the list in a sentence that asks for something: "Order.php and UserController.php
    # have no tests. Add an OrderTest and a UserControllerTest" tells the second
    first = next((g for g in units.groups if _in_request(prose, g)), units.groups[0])
    if first.source == "clauses":
        return _own_clauses(prose, first, chosen)
    mine = {id(a) for unit in chosen for a in unit.atoms}
    if first.source == "items":
        items = []
        intro = prose[: prose.rfind("\n", 0, first.start) + 1].strip().splitlines()
        lead = intro[-1].strip().rstrip(":") if intro else ""
        for unit in chosen:
            atom = next(
                (a for a in first.atoms if id(a) in mine and a in unit.atoms), unit.atoms[0]
            )
            line_start = prose.rfind("\n", 0, atom.start) + 1
            line_end = prose.find("\n", atom.start)
            line = prose[line_start : line_end if line_end != -1 else len(prose)]
            item = re.sub(r"^[ \t]*(?:[-*•]|\d{1,2}[.)])[ \t]+", "", line).strip()
            bare_item = item.strip("`").rstrip(".") in (atom.label.strip("`"), _bare(atom.label))
            own_action = any(verb_of(c) for c in clauses(item))
            items.append((item, bool(lead) and (bare_item or not own_action)))
        if len(items) == 1:
            item, needs_lead = items[0]
            return f"{lead}: {item}" if needs_lead else item
        body = "\n".join(f"- {item}" for item, _ in items)
        return f"{lead}:\n{body}" if lead else body
    start, end = _sentence_around(prose, first.start, first.end)
    text = prose[start:end]
    for group in sorted(units.groups, key=lambda g: g.start, reverse=True):
        if group.start < start or group.end > end:
            continue
        local_start, local_end = group.start - start, group.end - start
        text = text[:local_start] + _join(_named_in(prose, group, chosen)) + text[local_end:]
    text = re.sub(r"\(\s*\)", "", text)
    if len(chosen) == 1:
        text = _one_unit(text, chosen[0], units.kind)
    text = re.sub(r"\s+([,.;:])(?=\s|$)", r"\1", " ".join(text.split()))
    text = re.sub(r"\b([Aa])n? (?=[A-Za-z])", _article, text)
    return text.strip(" ,;.")


def _own_clauses(prose: str, group: Group, chosen: Sequence[Unit]) -> str:
    """Each chosen unit's own clause of a sentence that gives each file a thing of its own
    ("Add an `active()` scope to User.php and a `paid()` scope to Order.php": "Add a
    `paid()` scope to Order.php"), the sentence's verb leading each."""
    start, _ = _sentence_around(prose, group.start, group.end)
    verb = prose[start:].split(None, 1)[0]
    mine = {id(a) for unit in chosen for a in unit.atoms}
    clauses_of: list[str] = []
    for i, atom in enumerate(group.atoms):
        if id(atom) not in mine:
            continue
        if i == 0:
            clauses_of.append(prose[start : atom.end])
            continue
        after_and = _AND.search(prose, group.atoms[i - 1].end, atom.start)
        own = prose[after_and.end() if after_and else group.atoms[i - 1].end : atom.end]
        clauses_of.append(f"{verb} {own.strip()}")
    return "; ".join(" ".join(c.split()) for c in clauses_of)


def _in_request(prose: str, group: Group) -> bool:
    start, end = _sentence_around(prose, group.start, group.end)
    return verb_of(prose[start:end]) is not None


def _named_in(prose: str, group: Group, chosen: Sequence[Unit]) -> list[str]:
    """How the list names each chosen unit: its words when its names stand together in
    the list ("GET /users in src/routes/users.js"), else its names."""
    named: list[str] = []
    for unit in chosen:
        places = [i for i, a in enumerate(group.atoms) if any(a is b for b in unit.atoms)]
        if not places:
            continue
        if places == list(range(places[0], places[-1] + 1)):
            named.append(prose[group.atoms[places[0]].start : group.atoms[places[-1]].end])
        else:
            named.extend(group.atoms[i].label for i in places)
    return list(dict.fromkeys(named))


# a trailing clause that only says the units are done apart: "…, each in its own file",
# "(one spec each)", "; the two are independent", "— independent changes", "… separately"
_APART_CLAUSE = re.compile(r"(?:[,;(]|\s[\u2014\u2013-]\s)[^,;()\u2014\u2013]*\)?\s*\.?\s*$")
_APART_WORDS = re.compile(
    r"(?<!\s)\s+(?:separately|independently(?:\s+of\s+each\s+other)?|in\s+parallel|in\s+any\s+order"
    r"|(?:as|in)\s+(?:separate|their\s+own)\s+(?:modules|files))"
    r"\s*\.?\s*$",
    re.I,
)


_EACH_OWN = re.compile(
    r",?(?<!\s)\s*each\s+(?:in|as)\s+(?:its|their)\s+own\s+(?:[\w-]+\s+)?"
    r"(?:file|module|package|directory|folder|spec)\b(?=\s+(?:with|in|under)\b)",
    re.I,
)


_ONE_COPY = {"versions": "version", "editions": "edition", "copies": "copy"}


def _one_unit(text: str, unit: Unit, kind: str) -> str:
    """One unit's text reads as one unit's: without the clause saying the units are done
    apart (its story is one of them already), its kind noun in the singular ("the billing
    service", not "each of the billing services")."""
    while True:
        clause = _APART_CLAUSE.search(text)
        if clause is None or clause.start() == 0:
            break
        words = clause.group(0).strip(" ,;().")
        if not independence_cue(words) or verb_of(words) or len(words.split()) > 7:
            break
        if any(_bare(atom.label) in words for atom in unit.atoms):
            break  # "…, each in its own file: lint": the unit is named in it
        if _WITH_LIST.match(words):  # "…, each with index and show actions": "… with …"
            text = f"{text[: clause.start()]} {_LEADING_EACH.sub('', words)}"
            break
        text = text[: clause.start()]
    text = _APART_WORDS.sub("", text)
    text = _EACH_OWN.sub("", text)  # "…, each in its own file with a test": "… with a test"
    one = singular_word(kind)
    if one and one != kind.lower():
        label = re.escape(unit.label)
        text = re.sub(
            rf"(?<![\w`])(?:each\s+of\s+)?(the\s+)?(`?{label}`?(?:\s+[\w-]+)?)\s+{re.escape(kind)}\b('?)",
            lambda m: f"{m.group(1) or ''}{m.group(2)} {one}" + ("'s" if m.group(3) else ""),
            text,
            flags=re.I,
        )
        text = re.sub(rf"\b({re.escape(one)})\s+each\s+(?:their|its)\s+own\b", r"\1 its own", text)
        if one == "translation":  # "Spanish and Italian versions of …": "Spanish version of …"
            text = re.sub(
                rf"(?<![\w`])({label})\s+(versions|editions|copies)\b",
                lambda m: f"{m.group(1)} {_ONE_COPY[m.group(2).lower()]}",
                text,
                flags=re.I,
            )
        # "the four mappers (claude)", "each package (core)": "the claude mapper"
        text = re.sub(
            rf"\b(?:the\s+|each\s+)?(?:[\w-]+\s+)?(?:{re.escape(kind)}|{re.escape(one)})"
            rf"\s*\(\s*({label})\s*\)",
            lambda m: f"the {m.group(1)} {one}",
            text,
            flags=re.I,
        )
    return text


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _article(match: re.Match[str]) -> str:
    """ "a"/"an" fitted to the word after it, once a unit's name replaced the list."""
    following = match.string[match.end() : match.end() + 1]
    return match.group(1) + ("n " if following.lower() in "aeio" else " ")


def _sentence_around(prose: str, start: int, end: int) -> tuple[int, int]:
    left = max((m.end() for m in SENTENCE_BREAK.finditer(prose, 0, start)), default=0)
    stop = SENTENCE_BREAK.search(prose, end)
    return left, stop.start() if stop else len(prose)
