"""Named units in a goal: the files, directories, endpoints, commands and services it lists.

A unit counts only when the goal *names* it inside an enumeration (an inline list such as
"a.py, b.py and c.py", "the billing, inventory and shipping services", or a bulleted or
numbered list whose items start with the name). Loose mentions ("in http/client.py")
are locations, not units, and so are directories the units live under ("under docs/")
and per-unit files ("each service has its own app.py").

Units with the same stem are one unit: "the api service" and "api/" name the same thing.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from itertools import islice

from baro_shared.goals.text import (
    CLASS_NAME,
    LANGUAGE_CODES,
    REGISTER_VERBS,
    TESTED_CLASS,
    parse_count,
    verb_of,
    word_set,
)

MAX_LIST_ITEMS = 24
MAX_ATOMS = 200

_EXTENSIONS = (
    "py|pyi|ipynb|ts|tsx|js|jsx|mjs|cjs|go|rs|java|kt|kts|scala|rb|php|cs|fs|c|h|cc|cpp|hpp|"
    "swift|dart|lua|ex|exs|erl|hs|clj|md|mdx|rst|adoc|txt|toml|yaml|yml|json|jsonl|ini|cfg|"
    "conf|lock|sql|sh|bash|zsh|ps1|html|htm|css|scss|sass|less|vue|svelte|proto|graphql|tf|"
    "hcl|xml|csv|gradle|nix|mk"
)
_PATH = re.compile(
    r"(?<![\w/.:@~$+-])(?:\.?[\w@+-][\w.@+-]*/)+(?:[\w.@+-]*[\w@+-])?"
    rf"|(?<![\w/.:@~$+-])\.?[\w@+-]+(?:\.[\w@+-]+)*\.(?:{_EXTENSIONS})\b"
)
_ENDPOINT = re.compile(
    r"(?:\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+)?(?<![\w./:~$-])"
    r"/[A-Za-z_{][\w{}.-]*(?:/[\w{}.-]+)*/?"
)
_BACKTICK = re.compile(r"`([^`\n]{1,80})`")
_COMMAND_LIKE = re.compile(r"^[a-z][\w-]*(?:\s+[a-z][\w-]*){1,2}$")
_NOT_PATHS = word_set(
    "and/or either/or read/write input/output client/server i/o yes/no on/off true/false "
    "pass/fail w/ w/o km/h tcp/ip ci/cd"
)
_FRAMEWORK_NAMES = re.compile(
    r"^[A-Z][a-z]*\.js$|^(?:node|next|vue|react|nuxt|d3|three|chart)\.js$"
)

# Nouns that name things with their own write surface, and nouns that name parts of one.
_UNIT_KIND_WORDS = word_set(
    "service microservice package module script command subcommand endpoint route page guide "
    "adapter backend plugin integration provider flow dashboard example project app application "
    "crate library lib worker job component controller handler router resource tool client sdk chart "
    "lambda screen view directory folder file repo repository stack notebook migration workflow "
    "mapper parser exporter importer report template theme translation model"
)
_PLURALS = {"library": "libraries", "repository": "repositories", "directory": "directories"}
UNIT_KINDS = "|".join(
    sorted((_PLURALS.get(w, w + "s") for w in _UNIT_KIND_WORDS), key=len, reverse=True)
)
_UNIT_KIND_SINGULAR = "|".join(sorted(_UNIT_KIND_WORDS, key=len, reverse=True))
_PART_KINDS = (
    "fields|columns|options|flags|methods|functions|helpers|params|parameters|arguments|args|"
    "attributes|properties|props|constants|keys|settings|variables|fixtures|cases|rules|"
    "checks|tables|messages|errors|types|enums|hooks|tests"
)
_NAME = r"[A-Za-z][\w+-]*"
# a name starts where no name character is before it: "\b" would also let one start after
# each "-" of "a-b-c-…", and a pattern tried from every such place is quadratic
_NAME_START = r"(?<![\w+-])"
_TICKED_NAME = rf"`?{_NAME}`?"
# Bounded repetition keeps a pathological "a, a, a, ..." linear instead of quadratic.
_PLAIN_LIST = re.compile(
    rf"{_NAME_START}({_NAME}(?:[ \t]*,[ \t]*{_NAME}){{0,{MAX_LIST_ITEMS}}}(?:[ \t]*,[ \t]*|[ \t]+)(?:and|or|&)[ \t]+{_NAME})"
    rf"[ \t]+(?:[a-z][\w-]*[ \t]+)?({UNIT_KINDS})\b",
    re.I,
)
_NAME_LIST = (
    rf"{_TICKED_NAME}(?:(?:[ \t]*,[ \t]*(?:and[ \t]+|&[ \t]*)?|[ \t]+(?:and|&)[ \t]+){_TICKED_NAME})"
    rf"{{1,{MAX_LIST_ITEMS}}}"
)
# "the components: Avatar, Badge and Tooltip", "three dashboards (runs, agents, costs)",
# "endpoints for users, orders and products"
_KIND_THEN_NAMES = re.compile(
    rf"\b({UNIT_KINDS})\b(?:(?:[^:\n.;()]|\.(?=\w)){{0,60}}?:[ \t]*|[ \t]*\([ \t]*|[ \t]+(?:for|named|called)"
    rf"[ \t]+(?:the[ \t]+)?)({_NAME_LIST})(?![\w/`-]|\.\w)",
    re.I,
)
# "each package (core, http, cli)", "a README in every package: core, http and cli"
_EACH_KIND_NAMES = re.compile(
    rf"\b(?:each|every)[ \t]+(?:[\w-]+[ \t]+)?({_UNIT_KIND_SINGULAR})\b(?:[^:\n.;()]{{0,60}}?:[ \t]*|[ \t]*\([ \t]*)"
    rf"({_NAME_LIST})(?![\w/`-]|\.\w)",
    re.I,
)
# "two dashboards in deploy/, queue-depth and error-rate, ..."
_KIND_THEN_APPOSITION = re.compile(
    rf"\b({UNIT_KINDS})\b([^:\n.;()]{{0,60}}?),[ \t]*({_NAME_LIST})[ \t]*(?=,|\.(?:\s|$)|$)",
    re.I,
)
# "the endpoints users, orders and products": the word between the kind and the comma is
# the list's first name
_FIRST_NAME = re.compile(rf"[ \t]+({_NAME})[ \t]*")
# "a users endpoint, an orders endpoint and a products endpoint"
_REPEATED_KIND = re.compile(
    rf"\b(?:an?|the)[ \t]+(/?{_NAME})[ \t]+({_UNIT_KIND_SINGULAR})\b(?![ \t]*[\w/`-]*\.\w)",
    re.I,
)
# Classes named with their kind as the last word: "an OrderController and a ProductController",
# "UserService, OrderService and PaymentService"
_CLASS_SEP = re.compile(
    r"(?:[ \t]+for[ \t]+[^,;\n]{1,40}?)?[ \t]*,?[ \t]*(?:(?:and|or|&|\+|plus)[ \t]+)?(?:(?:an?|the)[ \t]+)?",
    re.I,
)  # "an OrderTest for app/Models/Order.php and a UserControllerTest for …"
_FOR_PHRASE = re.compile(
    r"[ \t]+for[ \t]+[^,;\n]{1,40}?(?=[ \t]+(?:and|or)[ \t]|[,;\n]|\.(?:\s|$)|$)"
)
_TEST_CLASS_SUFFIXES = frozenset({"Test", "Tests", "Spec"})
# React hooks are units by their names alone: "useTheme", "useLocale"
_HOOK_NAME = re.compile(r"(?<![\w/.`-])`?use[A-Z][A-Za-z0-9]*`?(?![\w/.-])")
_HOOK_NOUN = re.compile(r"\bhooks?\b", re.I)
# "e2e tests for login, checkout and search, one spec each": names without a kind noun
# count only when the goal says at once that each gets its own
_TESTS_FOR_NAMES = re.compile(
    rf"\b(?:(e2e|end-to-end|browser|ui|playwright|cypress)[ \t-]+)?(?:unit[ \t-]+)?"
    rf"(?:tests?|specs?|coverage)[ \t]+(?:for|on)[ \t]+(?:the[ \t]+)?({_NAME_LIST})"
    # the cue may follow in the next sentence: "… signup and checkout. Playwright, one spec
    # per flow", "… tax and inventory (src/shop/). Write a test module for each one"
    r"(?:[ \t]*\([^()\n]{0,40}\))?(?:[ \t]*,)?(?:[.;][ \t]+(?:[\w-]+[ \t]*,[ \t]*)?)?[ \t]*"
    r"(?=one[ \t]+[\w-]+(?:[ \t]+[\w-]+)?[ \t]+(?:each|per)\b|each[ \t]+in[ \t]+its[ \t]+own\b|"
    r"separately\b|independently\b|[\w \t-]{0,40}?\b(?:for|per)[ \t]+each\b)",
    re.I,
)
# "Translate the README into German and French": languages name the translations when the
# goal names the document they translate
_TRANSLATE_INTO = re.compile(
    rf"\btranslat(?:e|es|ing)\b((?:[^.\n;:]|\.(?=\w)){{0,80}}?)\b(?:into|to)[ \t]+({_NAME_LIST})",
    re.I,
)
# "Spanish and Italian versions of locales/en.json"
_LANGUAGE_VERSIONS = re.compile(
    rf"{_NAME_START}({_NAME_LIST})[ \t]+(?:versions?|editions?|copies)[ \t]+of\b((?:[^.\n;:]|\.(?=\w)){{1,80}})",
    re.I,
)
_TRANSLATED_DOCUMENT = re.compile(r"\breadme\b|[\w-]\.\w{1,6}\b", re.I)
_PLAIN_NAME = re.compile(_NAME)
_NOT_NAMES = word_set(
    "the a an all both each every other new old these those our my its their this that "
    "some any more most two three four five six seven eight nine ten and or separate own "
    "single simple small basic main default same first second third last few several "
    "following missing existing remaining public private internal"
)
_KIND_AFTER = re.compile(rf"^[\s`]*(?:[\w-]+\s+)?(?:({UNIT_KINDS})|({_PART_KINDS}))\b", re.I)
_KIND_BEFORE = re.compile(
    rf"\b(?:({UNIT_KINDS})|({_PART_KINDS}))\b(?:[^.\n]{{0,12}}|[^.\n:;()]{{0,60}}[:(]\s*)$",
    re.I,
)
_MISSING_FROM = re.compile(
    r"[\s`]*(?:are|is)\s+(?:missing|absent|not\s+(?:yet\s+)?(?:in|available\s+in))\s+(?:from\s+)?"
    r"(?:the\s+|our\s+)?(cli|command[\s-]line|api)\b",
    re.I,
)
_KIND_WORD = re.compile(rf"\b({UNIT_KINDS})\b", re.I)
_ANY_KIND = re.compile(rf"\b(?:{UNIT_KINDS}|{_UNIT_KIND_SINGULAR})\b", re.I)
_LIST_SEP = re.compile(
    r"[ \t,()\[\]—\u2013]*(?:(?:and|or|&|\+|plus|as\s+well\s+as)[ \t]+"
    r"(?:(?:for|to|in|on|the|also|of|one|another)[ \t]+)*)?"
    r"[ \t,()\[\]]*",
    re.I,
)
_CONTAINER_LEAD = re.compile(
    r"\b(?:under|in|into|inside|within|below|beneath)\s+(?:the\s+)?$", re.I
)
_PLACED_IN = re.compile(
    r"[ \t]+(?:in|at|inside|into|as)[ \t]+(?:the[ \t]+)?(?:file[ \t]+)?|[ \t]*[(:][ \t]*", re.I
)
_BESIDE_LEAD = re.compile(r"\b(?:next\s+to|beside|alongside)\s+$", re.I)
_REGISTERED_IN = re.compile(
    rf"\b{REGISTER_VERBS}\s+(?:them|both|each|all)\s+(?:in|into|to|with)\s+(?:the\s+)?$",
    re.I,
)
_TO_LEAD = re.compile(r"\b(?:to|in|into)[ \t]+(?:the[ \t]+)?$", re.I)
_AND_ANOTHER_TO = re.compile(
    r"[ \t]+and[ \t]+(?:an?[ \t]+|the[ \t]+|another[ \t]+)[^.;:\n]{1,60}?[ \t]+(?:to|in|into)[ \t]+"
    r"(?:the[ \t]+)?",
    re.I,
)
_OWN_LEAD = re.compile(r"\b(?:its|their)\s+own\s+$", re.I)
_INTO_LEAD = re.compile(
    r"\b(?:in|into|(?<!next\s)to|inside|within)\s+(?:the\s+)?(?:file\s+)?$", re.I
)
_ITEM_LINE = re.compile(r"^[ \t]*(?:[-*•]|\d{1,2}[.)]|step\s+\d{1,2}\s*[:.)-]?)[ \t]+", re.I | re.M)
_ITEM_LEAD = re.compile(r"^(?:the\s+|for\s+|in\s+)?$", re.I)
# A bulleted item that is only a name, perhaps with a note: "- runs: tokens per run"
_NAME_ITEM = re.compile(rf"^`?({_NAME})`?(?:\s*$|\s*[:(—\u2013-]\s)")
_STATED_COUNT = re.compile(
    r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|[2-9]|1[0-6])\s+(?:[\w-]+\s+){0,3}?[\w-]+s\b",
    re.I,
)
_TEST_AFFIX = re.compile(r"^test_|_test$|\.test$|\.spec$|_spec$")


@dataclass(frozen=True, slots=True)
class Atom:
    """One named thing in the goal, where it is, and what identifies it.

    ``key`` tells two units apart; ``stem`` ties a unit to the same thing named another
    way ("POST /users" and "handlers/users.py"). They differ only for endpoints, where
    "GET /runs" and "POST /runs" are two units with one stem.
    """

    start: int
    end: int
    label: str
    key: str
    kind: str  # path | dir | endpoint | command | ident | flag | name
    stem: str = ""

    def __post_init__(self) -> None:
        if not self.stem:
            object.__setattr__(self, "stem", self.key)


@dataclass(frozen=True, slots=True)
class NamedUnits:
    units: tuple[Unit, ...]
    kind: str
    stated_counts: tuple[int, ...]
    # A single file all the units go into ("add the /a and /b routes to api/routes.py").
    shared_file: str | None = None
    groups: tuple[Group, ...] = ()
    # Directories the units live under ("under docs/api/"), not units themselves, or a
    # file they go beside ("next to Nav.tsx").
    containers: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(u.label for u in self.units)

    @property
    def count(self) -> int:
        return len(self.units)


# --------------------------------------------------------------------------- atoms


def _stem(path: str) -> str:
    """The name a path is known by: "README.de.md" -> "readme.de", "a.test.ts" -> "a"."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    if "." in name.lstrip("."):
        name = name.rsplit(".", 1)[0]
    return _TEST_AFFIX.sub("", name) or name


def _endpoint_atom(start: int, label: str) -> Atom:
    route = label.split()[-1]
    segments = [s for s in route.split("/") if s and not s.startswith("{")]
    stem = _stem(segments[-1]) if segments else route
    key = " ".join(label.lower().split())
    return Atom(start, start + len(label), label, key, "endpoint", stem)


def _backtick_atom(match: re.Match[str]) -> Atom:
    content = match.group(1).strip()
    start, end = match.start(), match.end()
    if _ENDPOINT.fullmatch(content):
        atom = _endpoint_atom(start, content)
        return Atom(start, end, match.group(0), atom.key, "endpoint", atom.stem)
    if _PATH.fullmatch(content) and content.lower() not in _NOT_PATHS:
        kind = "dir" if content.endswith("/") else "path"
        return Atom(start, end, match.group(0), _stem(content), kind)
    if _COMMAND_LIKE.match(content):
        return Atom(start, end, match.group(0), content.split()[-1].lower(), "command")
    if content.startswith("-"):
        return Atom(start, end, match.group(0), content.lower(), "flag")
    return Atom(start, end, match.group(0), content.lower(), "ident")


def find_atoms(prose: str) -> list[Atom]:
    """Paths, endpoints and backticked names in reading order (``prose`` has no URLs)."""
    return list(_atoms(prose))


@functools.lru_cache(maxsize=32)
def _atoms(prose: str) -> tuple[Atom, ...]:
    atoms = [_backtick_atom(m) for m in islice(_BACKTICK.finditer(prose), MAX_ATOMS)]
    masked = _BACKTICK.sub(lambda m: "\x00" * len(m.group(0)), prose)
    path_starts: set[int] = set()
    for m in islice(_PATH.finditer(masked), MAX_ATOMS):
        label = m.group(0).rstrip(".-")
        if label.lower() in _NOT_PATHS or _FRAMEWORK_NAMES.match(label):
            continue
        kind = "dir" if label.endswith("/") else "path"
        atoms.append(Atom(m.start(), m.start() + len(label), label, _stem(label), kind))
        path_starts.update(range(m.start(), m.end()))
    for m in islice(_ENDPOINT.finditer(masked), MAX_ATOMS):
        if m.start() in path_starts or masked[m.start()] == "\x00":
            continue
        label = m.group(0).rstrip(".-")
        atoms.append(_endpoint_atom(m.start(), label))
    atoms.sort(key=lambda a: a.start)
    return tuple(atoms[:MAX_ATOMS])


def _name_atoms(prose: str, offset: int, text: str) -> list[Atom] | None:
    names = [
        Atom(offset + n.start(), offset + n.end(), n.group(0), n.group(0).lower(), "name")
        for n in _PLAIN_NAME.finditer(text)
        if n.group(0).lower() not in {"and", "or"}
    ]
    while names and names[-1].key in _LIST_TAIL:  # "Avatar, Badge and Tooltip, each in ..."
        names.pop()
    if len(names) < 2 or any(a.key in _NOT_NAMES or a.key in _KIND_NOUNS for a in names):
        return None
    return names


_KIND_NOUNS = frozenset(UNIT_KINDS.split("|")) | frozenset(_UNIT_KIND_WORDS)
# Words after a list that say how its members are done, not members: ", each in its own file",
# ", one JSON file each"
_LIST_TAIL = frozenset({"each", "every", "all", "both", "one", "separately", "independently"})
# "three workflow files: ...", "the dashboard files (...)": the noun before "files" says
# what the files are
_FILES_OF_KIND = re.compile(rf"\b({_UNIT_KIND_SINGULAR})[ \t]+$", re.I)
_GENERIC_KINDS = frozenset({"files", "file", "modules", "module"})


def _files_kind(prose: str, start: int, kind: str) -> str:
    """The kind of units a list names: ``kind``, unless it is only "files" or "modules"
    after a kind noun ("workflow files" name workflows, "route modules" routes: each has a
    place of its own)."""
    if kind not in _GENERIC_KINDS:
        return kind
    qualifier = _FILES_OF_KIND.search(prose, max(0, start - 40), start)
    if qualifier is None or qualifier.group(1).lower() in _GENERIC_KINDS:
        return kind
    noun = qualifier.group(1).lower()
    return _PLURALS.get(noun, noun + "s")


def _class_lists(prose: str) -> list[tuple[list[Atom], str]]:
    """Lists of two or more class names that end in the same kind of unit."""
    lists: list[tuple[list[Atom], str]] = []
    run: list[re.Match[str]] = []
    for m in [*CLASS_NAME.finditer(prose), None]:
        if m is not None and _class_kind(m) and run:
            previous = run[-1]
            same_kind = m.group(2) == previous.group(2)
            if same_kind and _CLASS_SEP.fullmatch(prose[previous.end() : m.start()]):
                run.append(m)
                continue
        if len(run) >= 2:
            names = [
                Atom(r.start(1), _for_end(prose, r.end()), r.group(1), r.group(1).lower(), "name")
                for r in run
            ]
            kind = _class_kind(run[0]) or ""
            lists.append((names, _PLURALS.get(kind, kind + "s")))
        run = [m] if m is not None and _class_kind(m) else []
    return lists


def _for_end(prose: str, end: int) -> int:
    """Where a class named with what it is for ends ("an OrderTest for app/Models/Order.php
    and …"): its words go with it when its story is told."""
    phrase = _FOR_PHRASE.match(prose, end)
    return phrase.end() if phrase else end


def _class_kind(match: re.Match[str]) -> str | None:
    """The kind a class name ends in ("OrderController": controller; "CartTest": test
    file), or None for another name."""
    last = match.group(2)
    if last in _TEST_CLASS_SUFFIXES:
        return "test file"
    return last.lower() if last.lower() in _UNIT_KIND_WORDS else None


def _plain_name_groups(prose: str) -> list[tuple[list[Atom], str]]:
    """Units named by plain words next to their kind noun, with that noun.

    "the billing, inventory and shipping services", "three components: Avatar, Badge and
    Tooltip", "dashboards (runs, agents, costs)", "a users endpoint and an orders endpoint".
    """
    lists: list[tuple[list[Atom], str]] = []
    for m in _TESTS_FOR_NAMES.finditer(prose):
        names = _name_atoms(prose, m.start(2), m.group(2))
        if names:  # end-to-end tests name flows; other tests, the modules they test
            lists.append((names, "flows" if m.group(1) else "modules"))
    for m, names_at, document_at in [
        *((m, 2, 1) for m in _TRANSLATE_INTO.finditer(prose)),
        *((m, 1, 2) for m in _LANGUAGE_VERSIONS.finditer(prose)),
    ]:
        names = _name_atoms(prose, m.start(names_at), m.group(names_at))
        if (
            names
            and all(a.key in LANGUAGE_CODES for a in names)
            and _TRANSLATED_DOCUMENT.search(m.group(document_at))
        ):
            lists.append((names, "translations"))
    lists.extend(_class_lists(prose))
    if not _ANY_KIND.search(prose):
        return lists
    for m in _PLAIN_LIST.finditer(prose):
        names = _name_atoms(prose, m.start(1), m.group(1))
        if names:  # "the invoices and payments route modules": a word between qualifies
            kind = m.group(2).lower()
            if prose[m.end(1) : m.start(2)].strip():
                kind = _files_kind(prose, m.start(2), kind)
            lists.append((names, kind))
    for m in _KIND_THEN_NAMES.finditer(prose):
        names = _name_atoms(prose, m.start(2), m.group(2))
        if names:
            lists.append((names, _files_kind(prose, m.start(1), m.group(1).lower())))
    for m in _EACH_KIND_NAMES.finditer(prose):
        names = _name_atoms(prose, m.start(2), m.group(2))
        if names:
            noun = m.group(1).lower()
            lists.append((names, _PLURALS.get(noun, noun + "s")))
    for m in _KIND_THEN_APPOSITION.finditer(prose):
        names = _name_atoms(prose, m.start(3), m.group(3))
        if names and not any(verb_of(a.label) for a in names):
            first = _FIRST_NAME.fullmatch(m.group(2))
            if first and first.group(1).lower() not in _NOT_NAMES | _KIND_NOUNS:
                start = m.start(2) + first.start(1)
                word = first.group(1)
                names = [Atom(start, start + len(word), word, word.lower(), "name"), *names]
            lists.append((names, _files_kind(prose, m.start(1), m.group(1).lower())))
    hooks = [  # "a useTheme hook and a useLocale hook", "the useTheme and useLocale hooks"
        Atom(m.start(), m.end(), m.group(0), m.group(0).lower(), "name")
        for m in _HOOK_NAME.finditer(prose)
    ]
    if len(hooks) >= 2 and _HOOK_NOUN.search(prose):
        lists.append((hooks, "hooks"))
    run: list[re.Match[str]] = []
    for m in [*_REPEATED_KIND.finditer(prose), None]:
        if m is not None and run:
            previous = run[-1]
            same_kind = m.group(2).lower() == previous.group(2).lower()
            if same_kind and _LIST_SEP.fullmatch(prose[previous.end() : m.start()]):
                run.append(m)
                continue
        if len(run) >= 2:
            names = [  # "a /metrics endpoint and a /ready endpoint": routes
                _endpoint_atom(r.start(1), r.group(1))
                if r.group(1).startswith("/")
                else Atom(r.start(1), r.end(1), r.group(1), r.group(1).lower(), "name")
                for r in run
            ]
            if not any(a.key in _NOT_NAMES for a in names):
                kind = run[0].group(2).lower()
                lists.append((names, _PLURALS.get(kind, kind + "s")))
        run = [m] if m is not None else []
    return lists


# --------------------------------------------------------------------------- groups


def _drop_locations(atoms: list[Atom], prose: str) -> tuple[list[Atom], list[str]]:
    """Remove the directories units live under and the files each unit owns.

    Returns the atoms left and the container directories ("under docs/api/").
    """
    paths = [a for a in atoms if a.kind in ("path", "dir")]
    kept: list[Atom] = []
    containers: list[str] = []
    for i, atom in enumerate(atoms):
        before = prose[max(0, atom.start - 24) : atom.start]
        listed = atom.kind == "path" and _in_list(atoms, i, prose)  # "in a/b, c/d and e/f"
        if is_directory(atom) and not listed and _CONTAINER_LEAD.search(before):
            containers.append(atom.label)
            continue
        if atom.kind == "path" and not is_directory(atom) and _BESIDE_LEAD.search(before):
            containers.append(atom.label)  # "next to Nav.tsx": where that file is
            continue
        if is_directory(atom) and before.endswith("(") and prose.startswith(")", atom.end):
            containers.append(atom.label)  # "pricing, tax and inventory (src/shop/)"
            continue
        if atom.kind in ("path", "dir") and _OWN_LEAD.search(before):
            continue
        if atom.kind in ("path", "dir"):
            prefix = atom.label.rstrip("/") + "/"
            if any(other.label.startswith(prefix) for other in paths if other is not atom):
                if atom.kind == "dir":
                    containers.append(atom.label)
                continue
        kept.append(atom)
    return kept, containers


def is_directory(atom: Atom) -> bool:
    """A directory named with its slash ("docs/api/") or as a path whose last part has no
    extension ("in src/utils")."""
    return atom.kind == "dir" or (
        atom.kind == "path" and "/" in atom.label and "." not in atom.label.rsplit("/", 1)[1]
    )


def _in_list(atoms: list[Atom], i: int, prose: str) -> bool:
    """Whether the atom at ``i`` is listed with the one before or after it."""
    before = i > 0 and _LIST_SEP.fullmatch(prose[atoms[i - 1].end : atoms[i].start])
    after = i + 1 < len(atoms) and _LIST_SEP.fullmatch(prose[atoms[i].end : atoms[i + 1].start])
    return bool(before or after)


def _inline_groups(atoms: list[Atom], prose: str) -> list[list[Atom]]:
    groups: list[list[Atom]] = []
    current: list[Atom] = []
    for atom in atoms:
        gap = prose[current[-1].end : atom.start] if current else ""
        if current and (_LIST_SEP.fullmatch(gap) or _its_file(current[-1], gap, atom)):
            current.append(atom)
            continue
        groups.append(_without_subject(current, prose))
        current = [atom]
    groups.append(_without_subject(current, prose))
    return [group for group in groups if len(group) >= 2]


def _its_file(named: Atom, gap: str, path: Atom) -> bool:
    """ "GET /users in src/routes/users.js and GET /orders in …": the file a listed unit is
    placed in, by the unit's own name, is that unit, not a file the list shares."""
    return path.kind == "path" and path.stem == named.stem and bool(_PLACED_IN.fullmatch(gap))


def _without_subject(group: list[Atom], prose: str) -> list[Atom]:
    """ "translations of locales/en.json (locales/fr.json, locales/de.json)": the name a
    parenthesised list of two or more follows is what the list is about (a source, a
    parent), not one of its members."""
    if len(group) >= 3 and "(" in prose[group[0].end : group[1].start]:
        return group[1:]
    return group


def _idents_are_units(group: list[Atom], prose: str) -> str | None:
    """A list of backticked names names units only next to a unit noun ("... endpoints")."""
    missing = _MISSING_FROM.match(prose, group[-1].end)
    if missing:  # "`doctor` and `gc` are missing from the CLI": commands
        return "endpoints" if missing.group(1).lower() == "api" else "commands"
    after = _KIND_AFTER.match(prose[group[-1].end : group[-1].end + 40])
    if after:
        return after.group(1).lower() if after.group(1) else None
    before = _KIND_BEFORE.search(prose[max(0, group[0].start - 80) : group[0].start])
    if before:
        return before.group(1).lower() if before.group(1) else None
    return None


def _item_groups(prose: str, atoms: list[Atom]) -> list[tuple[list[Atom], str | None]]:
    """Bulleted or numbered lists whose items each name one unit.

    An item names a unit when it starts with the name ("- docs/install.md") or when all
    items repeat the same action on a different name ("- add tests for a.py"). Under a
    head that names the kind ("Add these dashboards:"), an item may be a plain name.
    """
    groups: list[tuple[list[Atom], str | None]] = []
    run: list[tuple[str, Atom | None]] = []
    head = ""

    def close() -> None:
        firsts = [atom for _, atom in run]
        if len(run) >= 2 and all(firsts):
            leading_ok = all(_ITEM_LEAD.match(lead) for lead, _ in run)
            verbs = {verb_of(lead) for lead, _ in run}
            if leading_ok or (len(verbs) == 1 and None not in verbs):
                kind = _KIND_WORD.search(head)
                noun = kind.group(1).lower() if kind else None
                groups.append(([a for a in firsts if a is not None], noun))
        run.clear()

    offset = 0
    for line in prose.splitlines(keepends=True):
        marker = _ITEM_LINE.match(line)
        if marker is None:
            close()
            if line.strip():
                head = line
        else:
            body_start = offset + marker.end()
            inside = [a for a in atoms if body_start <= a.start < offset + len(line)]
            first = inside[0] if inside else None
            if first is None and _KIND_WORD.search(head):
                name = _NAME_ITEM.match(line[marker.end() :])
                if name and name.group(1).lower() not in _NOT_NAMES:
                    start = body_start + name.start(1)
                    label = name.group(1)
                    first = Atom(start, start + len(label), label, label.lower(), "name")
            lead = prose[body_start : first.start] if first else line[marker.end() :]
            run.append((lead.strip().strip("`"), first))
        offset += len(line)
    close()
    return groups


# --------------------------------------------------------------------------- units


def _kind_for(prose: str, atoms: list[Atom], noun: str | None) -> str:
    if noun:
        return noun
    kind_word = _KIND_WORD.search(prose)
    if kind_word:  # "in separate router modules": routers
        return _files_kind(prose, kind_word.start(1), kind_word.group(1).lower())
    if all(a.kind == "endpoint" for a in atoms):
        return "endpoints"
    if all(a.kind == "command" for a in atoms):
        return "commands"
    if all(a.label.lower().endswith((".md", ".mdx", ".rst", ".adoc")) for a in atoms):
        return "docs pages"
    if all(re.search(r"(?:^|/)test_|_test\.|\.(?:test|spec)\.", a.label) for a in atoms):
        return "test files"
    if all(a.kind == "dir" for a in atoms):
        return "directories"
    return "files"


@dataclass(frozen=True, slots=True)
class Unit:
    """One named unit and every place the goal's lists name it ("POST /users" and
    "handlers/users.py" are one unit)."""

    label: str
    key: str
    stem: str
    atoms: tuple[Atom, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """One list in the goal that names units: its members and where it stands."""

    atoms: tuple[Atom, ...]
    source: str  # inline | items | names | clauses

    @property
    def start(self) -> int:
        return self.atoms[0].start

    @property
    def end(self) -> int:
        return self.atoms[-1].end


def _groups(prose: str, atoms: list[Atom]) -> list[tuple[Group, str | None]]:
    found: list[tuple[Group, str | None]] = []
    for group in _inline_groups(atoms, prose):
        if all(a.kind in ("ident", "flag") for a in group):
            noun = _idents_are_units(group, prose)
            if noun:
                found.append((Group(tuple(group), "inline"), noun))
            continue
        named = [a for a in group if a.kind not in ("ident", "flag")]
        if named:
            found.append((Group(tuple(named), "inline"), None))
    found.extend((Group(tuple(g), "items"), noun) for g, noun in _item_groups(prose, atoms))
    covered = [(g.start, g.end) for g, _ in found]
    for pair in _placed_apart(prose, atoms):
        if not any(s <= pair[0].start < e or s < pair[-1].end <= e for s, e in covered):
            found.append((Group(tuple(pair), "clauses"), None))
    for names, noun in _plain_name_groups(prose):
        group = Group(tuple(names), "names")
        # a list of words inside a list already found ("`a`, `b` and `c` commands") is that list
        if not any(s <= group.start and group.end <= e for s, e in covered):
            found.append((group, noun))
            covered.append((group.start, group.end))
    found.sort(key=lambda item: item[0].start)
    return _named_once(found, prose)


def _placed_apart(prose: str, atoms: list[Atom]) -> list[list[Atom]]:
    """Files each given a thing of its own in one sentence: "Add an `active()` scope to
    User.php and a `paid()` scope to Order.php" (each unit's words are its own clause)."""
    found: list[list[Atom]] = []
    run: list[Atom] = []
    for atom in [a for a in atoms if a.kind == "path" and not is_directory(a)]:
        placed = _TO_LEAD.search(prose, max(0, atom.start - 12), atom.start) is not None
        if run and placed and _AND_ANOTHER_TO.fullmatch(prose, run[-1].end, atom.start):
            run.append(atom)
            continue
        if len(run) >= 2:
            found.append(run)
        run = [atom] if placed else []
    if len(run) >= 2:
        found.append(run)
    return found


_SENTENCE_END = re.compile(r"[.;:!?](?:\s|$)|\n")


def _named_once(
    found: list[tuple[Group, str | None]], prose: str
) -> list[tuple[Group, str | None]]:
    """ "French, German and Spanish translations (locales/fr.json, ...)": plain names
    followed closely, in the same sentence, by as many paths name the same units twice;
    the paths are what the stories write, so the names' list gives way to them."""
    kept: list[tuple[Group, str | None]] = []
    for i, (group, noun) in enumerate(found):
        following = found[i + 1][0] if i + 1 < len(found) else None
        if (
            group.source == "names"
            and following is not None
            and following.source != "names"
            and len(following.atoms) == len(group.atoms)
            and following.start - group.end <= 60
            and not _SENTENCE_END.search(prose, group.end, following.start)
        ):
            found[i + 1] = (following, found[i + 1][1] or noun)
            continue
        kept.append((group, noun))
    return kept


def named_units(prose: str) -> NamedUnits:
    """The independent units the goal names, deduplicated by stem (order kept)."""
    atoms, containers = _drop_locations(find_atoms(prose), prose)
    groups = _groups(prose, atoms)

    order: list[str] = []
    by_key: dict[str, list[Atom]] = {}
    stem_owner: dict[str, str] = {}  # non-endpoint stem -> the unit key it belongs to
    endpoint_stems: dict[str, str] = {}
    dir_stems: dict[str, str] = {}  # a listed directory's name -> its unit
    used: list[Group] = []
    members: list[Atom] = []
    noun: str | None = None
    for named, group_noun in groups:
        group = _paths_apart(named)
        if len({a.key for a in group.atoms}) < 2:
            continue
        used.append(group)
        noun = noun or group_noun
        for atom in group.atoms:
            members.append(atom)
            if atom.kind == "endpoint":
                owner = atom.key if atom.key in by_key else stem_owner.get(atom.stem)
            else:
                owner = stem_owner.get(atom.stem) or endpoint_stems.get(atom.stem)
                owner = owner or dir_stems.get(_named_after(atom))
                owner = owner or stem_owner.get(_tested_stem(atom))  # "Order.php … OrderTest"
            if owner is None:
                owner = atom.key
                order.append(owner)
                by_key[owner] = []
                if atom.kind == "endpoint":
                    endpoint_stems.setdefault(atom.stem, owner)
                else:
                    stem_owner[atom.stem] = owner
                if is_directory(atom):
                    dir_stems.setdefault(atom.stem, owner)
            by_key[owner].append(atom)
    units = tuple(
        Unit(label=by_key[k][0].label, key=k, stem=by_key[k][0].stem, atoms=tuple(by_key[k]))
        for k in order
    )
    counts = tuple(c for c in (parse_count(m.group(1)) for m in _STATED_COUNT.finditer(prose)) if c)
    return NamedUnits(
        units=units,
        kind=_kind_for(prose, members, noun) if members else "units",
        stated_counts=counts,
        shared_file=_shared_file(atoms, members, prose),
        groups=tuple(used),
        containers=tuple(dict.fromkeys(containers)),
    )


def _tested_stem(atom: Atom) -> str | None:
    """The class a test class is named for ("OrderTest": order), for a name."""
    if atom.kind != "name":
        return None
    tested = TESTED_CLASS.fullmatch(atom.label.strip("`"))
    return tested.group(1).lower() if tested else None


def _named_after(atom: Atom) -> str | None:
    """The first name part of a new file named after a listed directory ("in internal/store
    and internal/queue: store_bench_test.go and …"): that directory's unit."""
    if atom.kind != "path" or "/" in atom.label:
        return None
    return re.split(r"[._-]", atom.label.strip("`"), maxsplit=1)[0].lower() or None


def _paths_apart(group: Group) -> Group:
    """Paths of one name in one list are different units ("packages/core/package.json,
    packages/http/package.json"): each is known by its whole path, not its name."""
    labels: dict[str, set[str]] = {}
    for a in group.atoms:
        if a.kind == "path":
            labels.setdefault(a.key, set()).add(a.label.lower())
    clashing = {key for key, named in labels.items() if len(named) > 1}
    if not clashing:
        return group
    atoms = tuple(
        dataclasses.replace(a, key=a.label.lower(), stem=a.label.lower())
        if a.kind == "path" and a.key in clashing
        else a
        for a in group.atoms
    )
    return dataclasses.replace(group, atoms=atoms)


def _shared_file(atoms: list[Atom], members: list[Atom], prose: str) -> str | None:
    """A file, outside the listed units, that the goal puts the work into."""
    listed = {(m.start, m.end) for m in members}
    for atom in atoms:
        if atom.kind != "path" or is_directory(atom) or (atom.start, atom.end) in listed:
            continue
        if _REGISTERED_IN.search(prose[max(0, atom.start - 48) : atom.start]):
            continue  # "…, then register both in main.py": where they are registered
        if _INTO_LEAD.search(prose[max(0, atom.start - 24) : atom.start]):
            return atom.label
    return None


def mentioned_paths(prose: str) -> list[str]:
    """Every path, endpoint or backticked name in the goal, once each, in order."""
    seen: dict[str, None] = {}
    for atom in find_atoms(prose):
        if atom.kind in ("path", "dir", "endpoint", "command"):
            seen.setdefault(atom.label, None)
    return list(seen)
