"""Where a unit's files are in a repository: paths as named, names of things, new test files.

A goal names units the way people do ("a.py", "the billing service", "the Avatar
component"); a story needs the repository paths it may change. ``Layout`` answers that
from the repository's file list, following the repository's own conventions (where its
tests live, how they are named, which directory holds its endpoints), and falls back to
the most common convention when there is no list (``baro plan`` outside a repository).
"""

from __future__ import annotations

import keyword
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from baro_shared.goals.text import CLASS_NAME, TESTED_CLASS
from baro_shared.surfaces import is_glob, normalize

TEST_ROOTS = ("tests", "test", "spec", "specs", "__tests__", "e2e")
_JS = frozenset({"js", "jsx", "ts", "tsx", "mjs", "cjs", "vue", "svelte"})
_NUMBERED = re.compile(r"^(?:[Vv]?\d{3,}|\d+)(?:__?|-)\w")
_JVM = frozenset({"java", "kt", "scala", "groovy"})
_TEST_NAME = re.compile(
    r"^test_|_test\.[^.]+$|\.(?:test|spec)\.[^.]+$|_spec\.[^.]+$"
    r"|^[A-Z]\w*[a-z0-9](?:Tests?|Spec|IT)\.(?:java|kt|scala|groovy|php|cs|swift)$"
)
_JVM_SUFFIXES = ("Test", "Tests", "Spec")
# Maven and Gradle keep a class's tests in the same package under src/test/
_JVM_MAIN = re.compile(r"(^|/)src/main/")

# Where a repository keeps each kind of unit, by directory name.
_HOMES: dict[str, tuple[str, ...]] = {
    "endpoint": (
        "routes",
        "routers",
        "endpoints",
        "handlers",
        "controllers",
        "api",
        "views",
        "resources",
    ),
    "component": ("components",),
    "hook": ("hooks",),
    "dashboard": ("dashboards", "grafana"),
    "workflow": (".github/workflows", "workflows"),
    "service": ("services",),
    "package": ("packages", "libs"),
    "plugin": ("plugins",),
    "adapter": ("adapters",),
    "page": ("pages", "docs"),
    "guide": ("guides", "docs"),
    "command": ("commands", "cmd", "cli"),
    "mapper": ("mappers",),
    "migration": ("migrations",),
    "script": ("scripts", "bin", "tools"),
    "example": ("examples",),
    "app": ("apps",),
    "worker": ("workers",),
    "job": ("jobs",),
    "tool": ("tools",),
    "client": ("clients",),
    "template": ("templates",),
    "report": ("reports",),
    "screen": ("screens",),
    "flow": ("flows",),
    "parser": ("parsers",),
    "exporter": ("exporters",),
    "notebook": ("notebooks",),
}
_KIND_ALIASES = {
    "route": "endpoint",
    "resource": "endpoint",
    "controller": "endpoint",
    "handler": "endpoint",
    "router": "endpoint",
    "microservice": "service",
    "subcommand": "command",
    "application": "app",
    "library": "package",
    "lib": "package",
    "view": "screen",
}


def singular(kind: str) -> str:
    """The kind of one unit, as the layout knows it (a router is an endpoint)."""
    word = singular_word(kind)
    return _KIND_ALIASES.get(word, word)


def singular_word(kind: str) -> str:
    """The kind's own word for one unit ("routers" -> "router")."""
    word = kind.lower().split()[-1] if kind.strip() else ""
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") else word


def is_test_file(path: str) -> bool:
    return bool(_TEST_NAME.search(posixpath.basename(path)))


def split_ext(name: str) -> tuple[str, str]:
    """A file name's stem and extension (without the dot; "" when it has none)."""
    stem, dot, ext = name.rpartition(".")
    return (stem, ext) if dot and stem else (name, "")


class Layout:
    """A repository's file list, read for where things are and how they are named."""

    def __init__(self, files: Sequence[str] | None) -> None:
        self.known = files is not None and len(files) > 0
        self.files = sorted(set(files or ()))
        self._set = set(self.files)
        dirs: set[str] = set()
        in_dir: dict[str, list[str]] = {}
        for f in self.files:
            parts = f.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
            in_dir.setdefault(posixpath.dirname(f), []).append(f)
        self.dirs = dirs
        self._in_dir = in_dir
        subdirs: dict[str, list[str]] = {}
        for d in sorted(dirs):
            subdirs.setdefault(posixpath.dirname(d), []).append(d)
        self._subdirs = subdirs
        self._with_subdirs = set(subdirs)
        by_stem: dict[str, list[str]] = {}
        for f in self.files:
            by_stem.setdefault(split_ext(posixpath.basename(f))[0], []).append(f)
        self._by_stem = by_stem
        by_name: dict[str, list[str]] = {}
        for f in self.files:
            by_name.setdefault(posixpath.basename(f), []).append(f)
        self._by_name = by_name

    def has(self, path: str) -> bool:
        return path in self._set

    def in_dir(self, directory: str) -> list[str]:
        """The files directly in ``directory`` ("" for the root), in order."""
        return self._in_dir.get(directory, [])

    def subdirs(self, directory: str) -> list[str]:
        """The directories directly in ``directory`` ("" for the root), in order."""
        return self._subdirs.get(directory, [])

    # ---------------------------------------------------------------- paths as named

    def resolve(self, token: str) -> list[str]:
        """The repository paths a token names: itself when the repository has it (or it
        is new, a directory or a glob), else every file of that name in the repository."""
        path = normalize(token)
        if not self.known or is_glob(path) or path in self._set or path in self.dirs:
            return [path + "/**" if path in self.dirs else path]
        same_name = [f for f in self.files if f.endswith("/" + path)]
        if same_name:
            return same_name
        same_dir = [d + "/**" for d in sorted(self.dirs) if d.endswith("/" + path)]
        return same_dir or [self._beside_namesake(path) or path]

    def _beside_namesake(self, name: str) -> str | None:
        """A new file named after an existing one ("Button.stories.tsx", "ci-nightly.yml",
        "store_bench_test.go") goes beside it, when every file of that first name is in one
        directory. None for a path, or a plain name ("config.yaml"), or no such file."""
        stem, ext = split_ext(name)
        parts = _NAME_PARTS.split(stem)
        if "/" in name or not ext or len(parts) < 2 or not parts[0]:
            return None
        dirs = {
            posixpath.dirname(f)
            for f in self.files
            if _NAME_PARTS.split(posixpath.basename(f), maxsplit=1)[0] == parts[0]
        }
        if len(dirs) != 1:
            return None
        return posixpath.join(dirs.pop(), name)

    # ---------------------------------------------------------------- names of things

    def resolve_name(
        self,
        name: str,
        kind: str,
        containers: Iterable[str],
        ext_hint: str | None,
        *,
        test: bool = False,
    ) -> list[str]:
        """Where a unit known by a plain name lives ("billing" service, "Avatar" component),
        or where its new file goes: in the directory the goal names, else in the one this
        repository keeps such units in. Empty when nothing says where."""
        roots = [c.rstrip("/").removesuffix("/**") for c in containers]
        for root in roots:
            return self._found(name, kind, root) or [self._new_file(root, name, ext_hint, test)]
        kin = self._beside_kin(name)
        if kin is not None:
            return self._found(name, kind, posixpath.dirname(kin)) or [kin]
        home = self._home(kind)
        if home is not None:
            return self._found(name, kind, home) or [self._new_file(home, name, ext_hint, test)]
        return self._found(name, kind, "")

    def place_of(self, container: str) -> str | None:
        """The directory a container names: itself, or the directory of the one file it
        names ("next to Nav.tsx"; None when that is the root or no one file)."""
        stem, ext = split_ext(posixpath.basename(container.rstrip("/")))
        if container.endswith("/") or not ext or not stem:
            return container
        found = [container] if "/" in container else self._by_name.get(container, [])
        directory = posixpath.dirname(found[0]) if len(found) == 1 else ""
        return directory + "/" if directory else None

    def class_file(self, name: str) -> str | None:
        """The one file a class of this name is in ("CartTest": ``…/CartTest.java``)."""
        found = self._by_stem.get(name, [])
        return found[0] if len(found) == 1 else None

    def test_class_file(self, name: str) -> str | None:
        """The file of a test class named for the class it tests ("OrderTest": the test
        file of ``Order.php``), the existing one or where this repository would put it."""
        tested = TESTED_CLASS.fullmatch(name)
        if tested is None:
            return None
        source = self.class_file(tested.group(1))
        return self.class_file(name) or (self.test_file(source) if source else None)

    def _beside_kin(self, name: str) -> str | None:
        """A class named for its kind ("OrderController") goes where the repository keeps
        the others of that kind (``app/Http/Controllers/UserController.php``), when they
        are all in one directory."""
        kind = CLASS_NAME.fullmatch(name)
        if kind is None:
            return None
        suffix = kind.group(2)
        kin = [
            f
            for f in self.files
            if not is_test_file(f) and split_ext(posixpath.basename(f))[0].endswith(suffix)
        ]
        if not kin or len({posixpath.dirname(f) for f in kin}) != 1:
            return None
        ext = Counter(split_ext(f)[1] for f in kin).most_common(1)[0][0]
        return posixpath.join(posixpath.dirname(kin[0]), f"{name}.{ext}" if ext else name)

    def _found(self, name: str, kind: str, root: str) -> list[str]:
        """``name``'s files under ``root``, also when they carry their kind in their name
        (the claude mapper in ``claude_mapper.py``, the Auth service in ``AuthService.ts``)."""
        found = self._find(name, root)
        if found or not kind:
            return found
        for kinded in (f"{name}_{kind}", f"{name}-{kind}", f"{name}{kind}"):
            found = self._find(kinded, root)
            if found:
                return found
        return []

    def _find(self, name: str, root: str) -> list[str]:
        lowered = name.lower()
        dirs = [
            d for d in self.dirs if self._in(d, root) and d.rsplit("/", 1)[-1].lower() == lowered
        ]
        if len(dirs) == 1:
            return [dirs[0] + "/**"]
        return [
            f
            for f in self.files
            if self._in(f, root) and split_ext(posixpath.basename(f))[0].lower() == lowered
        ]

    def _in(self, path: str, root: str) -> bool:
        return not root or path == root or path.startswith(root + "/")

    def _home(self, kind: str) -> str | None:
        names = _HOMES.get(singular(kind), (kind.lower(),))
        best: tuple[int, int, int, str] | None = None
        for d in self.dirs:
            rank = next((i for i, n in enumerate(names) if d == n or d.endswith("/" + n)), None)
            if rank is None:
                continue
            direct = len(self.in_dir(d))
            # the most specific name first ("cli/commands/" over "cli/" for commands)
            key = (rank, -direct, d.count("/"), d)
            if direct and (best is None or key < best):
                best = key
        return best[3] if best else None

    def _new_file(self, root: str, name: str, ext_hint: str | None, test: bool) -> str:
        """A new file for ``name`` in ``root``, named like the files already there (like
        its tests, for a test file)."""
        siblings = [posixpath.basename(f) for f in self.in_dir(root) if is_test_file(f) == test]
        shapes = Counter(_name_shape(s) for s in siblings)
        hinted = [shape for shape in shapes if ext_hint and shape[1].endswith(ext_hint)]
        if hinted or shapes:
            prefix, suffix = (
                max(hinted, key=lambda sh: shapes[sh]) if hinted else shapes.most_common(1)[0][0]
            )
            if suffix == ".py" and keyword.iskeyword(name):
                return f"{root}/{prefix}{name}*{suffix}"  # "import" goes in import_.py or alike
            if all(sibling == sibling.lower() for sibling in siblings):
                name = name.lower()  # "a CodeQL workflow" beside ci.yml: codeql.yml
            return f"{root}/{prefix}{name}{suffix}"
        if ext_hint:
            return f"{root}/{name}{ext_hint}"
        if root in self._with_subdirs:
            return f"{root}/{name}/**"  # its neighbours are directories (services/billing/)
        return f"{root}/{name}*"

    # ---------------------------------------------------------------- tests

    def numbered_file(self, path: str) -> str | None:
        """For a new file in a directory whose files are numbered in one sequence
        (``0003_add_orders.sql``, ``20240101120000_users.rb``, ``V2__users.sql``): one of
        them. None for a file that exists, one numbered already, or elsewhere."""
        if not self.known or path in self._set or is_glob(path):
            return None
        if _NUMBERED.match(posixpath.basename(path)):
            return None  # its number is chosen: the goal named it
        directory = posixpath.dirname(path)
        names = [posixpath.basename(f) for f in self.in_dir(directory)]
        numbered = [n for n in names if _NUMBERED.match(n)]
        return numbered[-1] if len(numbered) >= 2 and 2 * len(numbered) >= len(names) else None

    def end_to_end_tests(self) -> str | None:
        """The directory this repository keeps its end-to-end tests in (``e2e/``,
        ``tests/e2e/``): the shallowest one of that name holding test files."""
        found = [
            d
            for d in self.dirs
            if d.rsplit("/", 1)[-1].lower() in ("e2e", "end-to-end")
            and any(is_test_file(f) for f in self.in_dir(d))
        ]
        return min(found, key=lambda d: (d.count("/"), d)) if found else None

    def test_file(self, path: str, container: str | None = None) -> str | None:
        """The test file of a module: the existing one, else where this repository would put
        it (a tests/ tree or beside the module, named as its other tests are)."""
        if is_glob(path) or is_test_file(path):
            return None
        directory, name = posixpath.split(path)
        stem, ext = split_ext(name)
        if not ext:
            return None
        existing = self._existing_tests(path, stem, ext)
        if existing:
            return existing
        root = container.rstrip("/").removesuffix("/**") if container else None
        if ext == "py":
            file_name = self._python_test_name(stem)
            if root:
                return f"{root}/{file_name}"
            return self._python_test_dir(directory) + file_name
        if ext == "go":
            return posixpath.join(directory, f"{stem}_test.go")
        if ext in _JS:
            suffix = self._js_suffix()
            if root:
                return f"{root}/{stem}{suffix}.{ext}"
            return posixpath.join(self._js_test_dir(directory), f"{stem}{suffix}.{ext}")
        if ext == "rb":
            return f"{root or 'spec'}/{stem}_spec.rb"
        if ext in _JVM and _JVM_MAIN.search(directory + "/"):
            return _JVM_MAIN.sub(r"\1src/test/", directory + "/", count=1) + (
                f"{stem}{self._jvm_suffix(ext)}.{ext}"
            )
        if ext == "ex" and (directory == "lib" or directory.startswith("lib/")):
            # Elixir's lib/shop/cart.ex is tested in test/shop/cart_test.exs
            return f"{root or 'test' + directory.removeprefix('lib')}/{stem}_test.exs"
        if ext == "php":
            return f"{root or self._php_test_dir(directory)}/{stem}Test.php"
        if ext == "rs" and root:
            # Rust's integration tests are crates of their own in tests/; its unit tests
            # live in the module itself (None: the module is the surface)
            return f"{root}/{stem}.rs"
        return None

    def _existing_tests(self, path: str, stem: str, ext: str) -> str | None:
        names = {
            f"test_{stem}.{ext}",
            f"{stem}_test.{ext}",
            f"{stem}.test.{ext}",
            f"{stem}.spec.{ext}",
            *(f"{stem}{suffix}.{ext}" for suffix in _JVM_SUFFIXES if ext in _JVM),
            *([f"{stem}_test.exs"] if ext == "ex" else []),
            *([f"{stem}Test.php"] if ext == "php" else []),
        }
        found = [f for f in self.files if posixpath.basename(f) in names and f != path]
        if not found:
            return None
        # the test closest to the module: most leading directories in common
        parts = path.split("/")

        def closeness(f: str) -> tuple[int, str]:
            common = 0
            for a, b in zip(parts, f.split("/"), strict=False):
                if a != b:
                    break
                common += 1
            return (-common, f)

        return min(found, key=closeness)

    def _python_tests(self) -> list[str]:
        return [f for f in self.files if f.endswith(".py") and is_test_file(f)]

    def _python_test_name(self, stem: str) -> str:
        tests = [posixpath.basename(f) for f in self._python_tests()]
        suffixed = sum(1 for t in tests if t.endswith("_test.py"))
        return f"{stem}_test.py" if suffixed > len(tests) - suffixed else f"test_{stem}.py"

    def _test_root(self) -> str | None:
        roots = Counter(
            f.split("/", 1)[0] for f in self.files if f.split("/", 1)[0] in TEST_ROOTS and "/" in f
        )
        return roots.most_common(1)[0][0] if roots else None

    def _python_test_dir(self, directory: str) -> str:
        """``tests/`` (mirroring a sub-package when the tree does) or beside the module."""
        tests = self._python_tests()
        if not self.known:
            return "tests/"
        in_root = [t for t in tests if t.split("/", 1)[0] in TEST_ROOTS]
        beside = [t for t in tests if t.split("/", 1)[0] not in TEST_ROOTS]
        if beside and len(beside) > len(in_root):
            return directory + "/" if directory else ""
        root = self._test_root() or "tests"
        for part in reversed(directory.split("/")):
            if part and f"{root}/{part}" in self.dirs:
                return f"{root}/{part}/"
        return f"{root}/"

    def _php_test_dir(self, directory: str) -> str:
        """PHPUnit's tree: ``tests/Unit/`` where the repository has one, else ``tests/``,
        mirroring the class's sub-directory when the tree does (``app/Models/User.php`` in
        ``tests/Unit/Models/``)."""
        root = "tests/Unit" if "tests/Unit" in self.dirs else "tests"
        below = directory.split("/", 1)[1] if "/" in directory else ""
        return f"{root}/{below}" if below and f"{root}/{below}" in self.dirs else root

    def _jvm_suffix(self, ext: str) -> str:
        """How this repository names a class's tests: ``CartTest``, ``CartTests`` or
        ``CartSpec`` (``Test`` when it has none yet)."""
        found = Counter(
            suffix
            for f in self.files
            if f.endswith("." + ext) and "src/test/" in f
            for suffix in _JVM_SUFFIXES
            if split_ext(posixpath.basename(f))[0].endswith(suffix)
        )
        return found.most_common(1)[0][0] if found else "Test"

    def _js_suffix(self) -> str:
        names = [posixpath.basename(f) for f in self.files]
        specs = sum(1 for n in names if re.search(r"\.spec\.[^.]+$", n) and split_ext(n)[1] in _JS)
        tests = sum(1 for n in names if re.search(r"\.test\.[^.]+$", n) and split_ext(n)[1] in _JS)
        return ".spec" if specs > tests else ".test"

    def _js_test_dir(self, directory: str) -> str:
        js_tests = [f for f in self.files if split_ext(f)[1] in _JS and is_test_file(f)]
        in_dunder = sum(1 for f in js_tests if "/__tests__/" in f or f.startswith("__tests__/"))
        in_root = sum(1 for f in js_tests if f.split("/", 1)[0] in ("tests", "test"))
        beside = len(js_tests) - in_dunder - in_root
        if in_dunder > max(in_root, beside):
            return posixpath.join(directory, "__tests__")
        if in_root > max(in_dunder, beside):
            return self._test_root() or "tests"
        return directory


_NAME_PARTS = re.compile(r"[._-]")


def _name_shape(basename: str) -> tuple[str, str]:
    """How a file is named around its stem: "test_a.py" -> ("test_", ".py"),
    "a.spec.ts" -> ("", ".spec.ts")."""
    stem, ext = split_ext(basename)
    suffix = f".{ext}" if ext else ""
    prefix = ""
    if stem.startswith("test_"):
        prefix, stem = "test_", stem[5:]
    for affix in (".test", ".spec", "_test", "_spec"):
        if stem.endswith(affix):
            suffix = affix + suffix
            break
    return prefix, suffix
