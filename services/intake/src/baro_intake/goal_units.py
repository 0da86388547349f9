"""Named units in a goal: the files, directories, endpoints, commands and services it lists.

A unit counts only when the goal *names* it inside an enumeration (an inline list such as
"a.py, b.py and c.py", "the billing, inventory and shipping services", or a bulleted or
numbered list whose items start with the name). Loose mentions ("in http/client.py")
are locations, not units, and so are directories the units live under ("under docs/")
and per-unit files ("each service has its own app.py").

Units with the same stem are one unit: "the api service" and "api/" name the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice

from baro_intake.goal_text import parse_count, verb_of, word_set

MAX_LIST_ITEMS = 24
MAX_ATOMS = 200

_EXTENSIONS = (
    "py|pyi|ipynb|ts|tsx|js|jsx|mjs|cjs|go|rs|java|kt|kts|scala|rb|php|cs|fs|c|h|cc|cpp|hpp|"
    "swift|dart|lua|ex|exs|erl|hs|clj|md|mdx|rst|adoc|txt|toml|yaml|yml|json|jsonl|ini|cfg|"
    "conf|lock|sql|sh|bash|zsh|ps1|html|htm|css|scss|sass|less|vue|svelte|proto|graphql|tf|"
    "hcl|xml|csv|gradle|nix|mk"
)
_PATH = re.compile(
    r"(?<![\w/.:@~$-])(?:\.?[\w@+-][\w.@+-]*/)+(?:[\w.@+-]*[\w@+-])?"
    rf"|(?<![\w/.:@~$-])\.?[\w@+-]+(?:\.[\w@+-]+)*\.(?:{_EXTENSIONS})\b"
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
UNIT_KINDS = (
    "services|microservices|packages|modules|scripts|commands|subcommands|endpoints|routes|"
    "pages|guides|adapters|backends|plugins|integrations|providers|flows|dashboards|"
    "examples|projects|apps|applications|crates|libraries|libs|workers|jobs|components|"
    "controllers|handlers|resources|tools|clients|sdks|charts|lambdas|screens|views|"
    "directories|folders|files|repos|repositories|stacks|notebooks|migrations"
)
_PART_KINDS = (
    "fields|columns|options|flags|methods|functions|helpers|params|parameters|arguments|args|"
    "attributes|properties|props|constants|keys|settings|variables|fixtures|cases|rules|"
    "checks|tables|messages|errors|types|enums|hooks|tests"
)
_NAME = r"[A-Za-z][\w+-]*"
# Bounded repetition keeps a pathological "a, a, a, ..." linear instead of quadratic.
_PLAIN_LIST = re.compile(
    rf"\b({_NAME}(?:[ \t]*,[ \t]*{_NAME}){{0,{MAX_LIST_ITEMS}}}[ \t]*,?[ \t]+(?:and|or|&)[ \t]+{_NAME})"
    rf"[ \t]+({UNIT_KINDS})\b",
    re.I,
)
_PLAIN_NAME = re.compile(_NAME)
_NOT_NAMES = word_set(
    "the a an all both each every other new old these those our my its their this that "
    "some any more most two three four five six seven eight nine ten"
)
_KIND_AFTER = re.compile(rf"^[\s`]*(?:[\w-]+\s+)?(?:({UNIT_KINDS})|({_PART_KINDS}))\b", re.I)
_KIND_BEFORE = re.compile(
    rf"\b(?:({UNIT_KINDS})|({_PART_KINDS}))\b[^.\n]{{0,12}}$",
    re.I,
)
_KIND_WORD = re.compile(rf"\b({UNIT_KINDS})\b", re.I)
_LIST_SEP = re.compile(
    r"[ \t,()\[\]—\u2013]*(?:(?:and|or|&|plus|as\s+well\s+as)[ \t]+(?:(?:for|to|in|on|the|also|of)[ \t]+)*)?"
    r"[ \t,()\[\]]*",
    re.I,
)
_CONTAINER_LEAD = re.compile(r"\b(?:under|in|into|inside|within|below|beneath)\s+$", re.I)
_OWN_LEAD = re.compile(r"\b(?:its|their)\s+own\s+$", re.I)
_INTO_LEAD = re.compile(r"\b(?:in|into|to|inside|within)\s+(?:the\s+)?(?:file\s+)?$", re.I)
_ITEM_LINE = re.compile(r"^[ \t]*(?:[-*•]|\d{1,2}[.)]|step\s+\d{1,2}\s*[:.)-]?)[ \t]+", re.I | re.M)
_ITEM_LEAD = re.compile(r"^(?:the\s+|for\s+|in\s+)?$", re.I)
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
    labels: tuple[str, ...]
    kind: str
    stated_counts: tuple[int, ...]
    # A single file all the units go into ("add the /a and /b routes to api/routes.py").
    shared_file: str | None = None

    @property
    def count(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------- atoms


def _stem(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    if "." in name and not name.startswith("."):
        name = name.split(".", 1)[0]
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
    return atoms[:MAX_ATOMS]


def _plain_name_atoms(prose: str) -> list[tuple[list[Atom], str]]:
    """Lists like "the billing, inventory and shipping services", with their kind noun."""
    lists: list[tuple[list[Atom], str]] = []
    for m in _PLAIN_LIST.finditer(prose):
        names = [
            Atom(
                m.start(1) + n.start(), m.start(1) + n.end(), n.group(0), n.group(0).lower(), "name"
            )
            for n in _PLAIN_NAME.finditer(m.group(1))
            if n.group(0).lower() not in {"and", "or"}
        ]
        if any(a.key in _NOT_NAMES for a in names):
            continue
        lists.append((names, m.group(2).lower()))
    return lists


# --------------------------------------------------------------------------- groups


def _drop_locations(atoms: list[Atom], prose: str) -> list[Atom]:
    """Remove the directories units live under and the files each unit owns."""
    paths = [a for a in atoms if a.kind in ("path", "dir")]
    kept: list[Atom] = []
    for atom in atoms:
        before = prose[max(0, atom.start - 24) : atom.start]
        if atom.kind == "dir" and _CONTAINER_LEAD.search(before):
            continue
        if atom.kind in ("path", "dir") and _OWN_LEAD.search(before):
            continue
        if atom.kind in ("path", "dir"):
            prefix = atom.label.rstrip("/") + "/"
            if any(other.label.startswith(prefix) for other in paths if other is not atom):
                continue
        kept.append(atom)
    return kept


def _inline_groups(atoms: list[Atom], prose: str) -> list[list[Atom]]:
    groups: list[list[Atom]] = []
    current: list[Atom] = []
    for atom in atoms:
        if current and _LIST_SEP.fullmatch(prose[current[-1].end : atom.start]):
            current.append(atom)
            continue
        if len(current) >= 2:
            groups.append(current)
        current = [atom]
    if len(current) >= 2:
        groups.append(current)
    return groups


def _idents_are_units(group: list[Atom], prose: str) -> str | None:
    """A list of backticked names names units only next to a unit noun ("... endpoints")."""
    after = _KIND_AFTER.match(prose[group[-1].end : group[-1].end + 40])
    if after:
        return after.group(1).lower() if after.group(1) else None
    before = _KIND_BEFORE.search(prose[max(0, group[0].start - 40) : group[0].start])
    if before:
        return before.group(1).lower() if before.group(1) else None
    return None


def _item_groups(prose: str, atoms: list[Atom]) -> list[list[Atom]]:
    """Bulleted or numbered lists whose items each name one unit.

    An item names a unit when it starts with the name ("- docs/install.md") or when all
    items repeat the same action on a different name ("- add tests for a.py").
    """
    groups: list[list[Atom]] = []
    run: list[tuple[str, Atom | None]] = []

    def close() -> None:
        firsts = [atom for _, atom in run]
        if len(run) >= 2 and all(firsts):
            leading_ok = all(_ITEM_LEAD.match(lead) for lead, _ in run)
            verbs = {verb_of(lead) for lead, _ in run}
            if leading_ok or (len(verbs) == 1 and None not in verbs):
                groups.append([a for a in firsts if a is not None])
        run.clear()

    offset = 0
    for line in prose.splitlines(keepends=True):
        marker = _ITEM_LINE.match(line)
        if marker is None:
            close()
        else:
            body_start = offset + marker.end()
            inside = [a for a in atoms if body_start <= a.start < offset + len(line)]
            first = inside[0] if inside else None
            lead = prose[body_start : first.start] if first else line[marker.end() :]
            run.append((lead.strip(), first))
        offset += len(line)
    close()
    return groups


# --------------------------------------------------------------------------- units


def _kind_for(prose: str, atoms: list[Atom], noun: str | None) -> str:
    if noun:
        return noun
    kind_word = _KIND_WORD.search(prose)
    if kind_word:
        return kind_word.group(1).lower()
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


def named_units(prose: str) -> NamedUnits:
    """The independent units the goal names, deduplicated by stem (order kept)."""
    atoms = _drop_locations(find_atoms(prose), prose)
    groups: list[tuple[list[Atom], str | None]] = []
    for group in _inline_groups(atoms, prose):
        if all(a.kind in ("ident", "flag") for a in group):
            noun = _idents_are_units(group, prose)
            if noun:
                groups.append((group, noun))
            continue
        groups.append(([a for a in group if a.kind not in ("ident", "flag")], None))
    groups.extend((group, None) for group in _item_groups(prose, atoms))
    groups.extend(_plain_name_atoms(prose))

    labels: dict[str, str] = {}
    stems: set[str] = set()
    non_endpoint_stems: set[str] = set()
    members: list[Atom] = []
    noun: str | None = None
    for group, group_noun in groups:
        if len({a.key for a in group}) < 2:
            continue
        noun = noun or group_noun
        for atom in group:
            members.append(atom)
            is_endpoint = atom.kind == "endpoint"
            seen = non_endpoint_stems if is_endpoint else stems
            if atom.key in labels or atom.stem in seen:
                continue
            labels[atom.key] = atom.label
            stems.add(atom.stem)
            if not is_endpoint:
                non_endpoint_stems.add(atom.stem)
    counts = tuple(c for c in (parse_count(m.group(1)) for m in _STATED_COUNT.finditer(prose)) if c)
    return NamedUnits(
        labels=tuple(labels.values()),
        kind=_kind_for(prose, members, noun) if members else "units",
        stated_counts=counts,
        shared_file=_shared_file(atoms, members, prose),
    )


def _shared_file(atoms: list[Atom], members: list[Atom], prose: str) -> str | None:
    """A file, outside the listed units, that the goal puts the work into."""
    for atom in atoms:
        if atom.kind != "path" or atom in members:
            continue
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
