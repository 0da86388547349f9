"""New units an application must register to reach them, and where it registers them.

"Add a users endpoint, an orders endpoint and a products endpoint, each in its own module"
splits into three stories that each write one router module. Each router still has to be
included where the application builds its routes (``api/app.py``), and three stories
editing that one file side by side would conflict; a story told to stay inside its own
module leaves its router unreachable. So the plan gets one more story, after the units,
that registers them all where the application registers the existing ones.

- ``creates_units`` and ``registered_kind``: the goal's words alone (what the intake
  has): it creates the units it names, and they are endpoints or commands, units an
  application registers.
- ``registry_files``: the repository's file list (what the planner has): the files where
  the new modules would be registered, nearest first; none when the modules exist already,
  when routing is by file (Next.js ``pages/``, SvelteKit ``+page``), or when nothing near
  them looks like where an application registers its units.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from baro_shared.goals.layout import Layout, is_test_file, singular, split_ext
from baro_shared.goals.text import SENTENCE_BREAK
from baro_shared.goals.units import UNIT_KINDS, NamedUnits
from baro_shared.surfaces import is_glob

# Units an application reaches only once registered: a router is included, a command added
# to the CLI's group. Plugins and workers are as often discovered; they are not guessed at.
REGISTERED_KINDS = frozenset({"endpoint", "command"})

_MAKE_VERBS = "add|create|implement|write|build|introduce|scaffold"
_CREATE = re.compile(rf"\b(?:{_MAKE_VERBS}|expose|needs?)\b", re.I)
# Where the words after the verb stop being what it creates ("add pagination TO the ...").
_PREPOSITION = re.compile(
    r"\b(?:to|in|into|on|of|for|from|with|across|at|under|inside|within)\b", re.I
)
# the unit kinds that are registered, by any of their names (route, router, subcommand, ...)
_REGISTERED_NOUN = re.compile(
    r"\b(?:"
    + "|".join(
        k.removesuffix("s") for k in UNIT_KINDS.split("|") if singular(k) in REGISTERED_KINDS
    )
    + r")s?\b",
    re.I,
)
_CREATE_THEM = re.compile(rf"\b(?:{_MAKE_VERBS})\s+(?:them|both)\b", re.I)
# new units of a registered kind, named in the list that follows
_NEW_OF_KIND = re.compile(r"\bnew\s+(?:[\w-]+\s+)?" + _REGISTERED_NOUN.pattern, re.I)

_ENTRY_STEMS = frozenset(
    {
        "app", "application", "main", "server", "urls", "routes", "router", "routers",
        "api", "cli", "__main__", "commands", "index", "root",
    }
)  # fmt: skip
_LANGUAGES = (
    frozenset({"py"}),
    frozenset({"js", "jsx", "ts", "tsx", "mjs", "cjs"}),
    frozenset({"go"}),
)
_ROUTED_BY_FILES_CONFIG = re.compile(r"(?:^|/)(?:next|nuxt|svelte|remix|astro)\.config\.[a-z]+$")
_ROUTE_FILE = re.compile(r"^(?:\+page|\+server|\+layout|page|route|layout)\.[a-z]+$")
_ROUTED_DIRS = frozenset({"pages", "app", "routes"})


def creates_units(prose: str, units: NamedUnits) -> bool:
    """Whether the goal creates the units it names: a creation verb governs the list ("Add
    a Footer component and a Header component", "Add CRUD endpoints for three resources:
    a.py, b.py"), not something about them ("Add pagination to the tags and notes
    endpoints", "Write tests for a.py and b.py")."""
    if units.count < 2:
        return False
    first = min(atom.start for unit in units.units for atom in unit.atoms)
    sentence_start = max((m.end() for m in SENTENCE_BREAK.finditer(prose, 0, first)), default=0)
    before = prose[sentence_start:first]
    verbs = list(_CREATE.finditer(before))
    if not verbs:  # "New REST routes, one router file each:\n- users\n- orders"
        new = _NEW_OF_KIND.search(prose, max(0, first - 120), first)
        # "`doctor` and `gc` are missing from the CLI. Add them …"
        them = registered_kind(units.kind) and _CREATE_THEM.search(prose, first)
        return bool(new or them)
    created = before[verbs[-1].end() :]
    stop = _PREPOSITION.search(created)
    if stop is None:
        return True  # the list is what the verb creates: "add a users endpoint, ..."
    head = created[: stop.start()]  # "add CRUD endpoints for ...": what it creates
    kind = singular(units.kind)
    return bool(_REGISTERED_NOUN.search(head)) or bool(
        kind and re.search(rf"\b{re.escape(kind)}s?\b", head, re.I)
    )


def registered_kind(kind: str) -> bool:
    """Units of this kind are reached only once registered (endpoints, routers, commands)."""
    return singular(kind) in REGISTERED_KINDS


def registry_files(layout: Layout, new_files: Iterable[str]) -> list[str]:
    """Where an application in this repository would register new modules at
    ``new_files``: for each, the entry modules (``app.py``, ``main.go``, ``server.ts``,
    ``urls.py``, ``cli.py``, ...) in its own directory or, failing that, the nearest of
    the two above it, with its package's ``__init__.py``; with no entry module near, the
    package's ``__init__.py`` when it has other modules. Empty without a file list."""
    if not layout.known:
        return []
    routed_by_files = any(_ROUTED_BY_FILES_CONFIG.search(f) for f in layout.files)
    new = [p for p in new_files if _is_new_module(layout, p)]
    found: list[str] = []
    for path in new:
        if _routed_by_files(path, routed_by_files):
            continue
        found.extend(_registry_of(layout, path, frozenset(new)))
    return list(dict.fromkeys(found))


def _is_new_module(layout: Layout, path: str) -> bool:
    """A new source file that is not itself a program's entry (a new ``cmd/x/main.go``)."""
    if layout.has(path) or is_glob(path) or is_test_file(path) or not _language(path):
        return False
    return split_ext(posixpath.basename(path))[0].lower() not in _ENTRY_STEMS


def _language(path: str) -> frozenset[str] | None:
    ext = split_ext(posixpath.basename(path))[1].lower()
    return next((lang for lang in _LANGUAGES if ext in lang), None)


def _routed_by_files(path: str, framework: bool) -> bool:
    if _ROUTE_FILE.match(posixpath.basename(path)):
        return True
    return framework and bool(_ROUTED_DIRS & set(path.split("/")[:-1]))


def _registry_of(layout: Layout, path: str, new: frozenset[str]) -> list[str]:
    language = _language(path)
    directory = posixpath.dirname(path)
    package_init = f"{directory}/__init__.py" if directory else "__init__.py"
    level = directory
    barrels: list[str] = []
    for _ in range(3):
        entries = [
            f
            for f in layout.in_dir(level)
            if f not in new
            and _language(f) == language
            and split_ext(posixpath.basename(f))[0].lower() in _ENTRY_STEMS
        ]
        if entries and level == directory and level and all(map(_is_barrel, entries)):
            # "routes/index.js" gathers the routers, the application above mounts them
            barrels = entries
        elif entries:
            init = [package_init] if level != directory and layout.has(package_init) else []
            return init + barrels + entries
        if not level:
            break
        level = posixpath.dirname(level)
    if barrels:
        return barrels
    siblings = [f for f in layout.in_dir(directory) if f != package_init]
    return [package_init] if siblings and layout.has(package_init) else []


def _is_barrel(path: str) -> bool:
    return split_ext(posixpath.basename(path))[0].lower() == "index"
