"""Where a run's code may come from, checked the same way by the CLI and the HTTP API.

A run on a cluster names its repository by git URL (``RepoSource`` kind ``url``) or by an
object-store name holding a bundle (kind ``bundle``). A URL ends up as an argument of
``git fetch`` and ``git clone`` on the merger and the runners, and it is kept on the bus
for as long as the run's history, so it is checked before anything is published: no
option-looking text, no exotic transports, no password inside it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from baro_shared.redact import mask_url_credentials

URL_SCHEMES = ("https", "http", "ssh", "git", "file")
URL_MAX = 2048
OBJECT_NAME_MAX = 512

# Lookaround-free patterns, so they also serve as JSON-schema patterns in the API's
# OpenAPI (anything they accept, the checks below accept too). A scp-like URL
# (user@host:path) may not have "::" after the host: that would select a remote helper
# such as ext::, which runs commands.
# "\s" differs between Python and the ECMA regexes JSON Schema uses (U+0085), so the
# character classes are spelled out: no C0/C1 control characters, no space.
_CONTROL = r"\x00-\x20\x7f-\x9f"
_C = rf"[^{_CONTROL}]"  # a visible character
URL_PATTERN = (
    rf"^(?:(?:https?|ssh|git)://(?:[^{_CONTROL}@/:]*@)?[A-Za-z0-9.-]+(?::[0-9]{{1,4}})?(?:/{_C}*)?"
    rf"|file://(?:localhost)?/{_C}*"
    rf"|(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9][A-Za-z0-9.-]*:(?:[^{_CONTROL}:/]|/[^{_CONTROL}/]){_C}*"
    rf"|/{_C}*)$"
)
_COMPONENT = r"[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
REF_PATTERN = rf"^{_COMPONENT}(?:/{_COMPONENT})*$"
COMMIT_PATTERN = r"^[0-9a-fA-F]{4,64}$"
OBJECT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:[./][A-Za-z0-9_-]+)*$"
REF_MAX = 255

_URL = re.compile(URL_PATTERN)
_REF = re.compile(REF_PATTERN)
_COMMIT = re.compile(COMMIT_PATTERN)
_OBJECT_NAME = re.compile(OBJECT_NAME_PATTERN)

URL_HINT = "use https://host/owner/repo.git, ssh://host/repo.git, git@host:owner/repo.git or file:///path/to/repo.git"


def is_control_or_space(char: str) -> bool:
    """A space or a C0/C1 control character (what the patterns above exclude)."""
    code = ord(char)
    return code <= 0x20 or 0x7F <= code <= 0x9F


class SourceProblem(ValueError):
    """What is wrong with a repository source, in one line that says what to do."""


def check_git_url(url: str) -> str:
    """The URL as given; raises SourceProblem when it cannot be handed to git safely."""
    text = url
    if not text:
        raise SourceProblem(f"the repository URL is empty: {URL_HINT}")
    if len(text) > URL_MAX:
        raise SourceProblem(f"the repository URL is longer than {URL_MAX} characters")
    if any(is_control_or_space(c) for c in text):
        raise SourceProblem("the repository URL contains spaces or control characters")
    if text.startswith("-"):
        raise SourceProblem(f"the repository URL {text!r} starts with '-': {URL_HINT}")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise SourceProblem(
                f"unsupported URL scheme {scheme!r}: use one of {', '.join(URL_SCHEMES)}"
            )
        try:
            parsed = urlsplit(text)
            _ = parsed.port  # raises on a malformed port
        except ValueError as exc:
            raise SourceProblem(f"the repository URL is malformed ({exc}): {URL_HINT}") from None
        if parsed.password is not None:
            raise SourceProblem(
                "the repository URL carries a password, which would be kept in the run's "
                "history: give the cluster git credentials instead and use the URL without it"
            )
    if not _URL.match(text):
        raise SourceProblem(f"{text!r} is not a git URL: {URL_HINT}")
    return text


def redact_url(url: str) -> str:
    """The URL without secrets: an https user name is often a token, so it goes too."""
    return mask_url_credentials(url)


def check_ref(ref: str) -> str:
    text = ref
    if len(text) > REF_MAX or not _REF.match(text):
        raise SourceProblem(
            f"{ref!r} is not a usable ref name: letters, digits and ._/- only, "
            "not starting with '-' (e.g. main or refs/heads/main)"
        )
    return text


def check_commit(commit: str) -> str:
    text = commit
    if not _COMMIT.match(text):
        raise SourceProblem(f"{commit!r} is not a commit id: give 4 to 64 hex digits")
    return text.lower()


def check_object_name(name: str) -> str:
    text = name
    if len(text) > OBJECT_NAME_MAX or not _OBJECT_NAME.match(text):
        raise SourceProblem(
            f"{name!r} is not an object name: letters, digits and ._/- only (e.g. "
            "runs/<run>/source.bundle)"
        )
    return text


def source_bundle_name(run_id: str) -> str:
    """A run's own source bundle (what API clients may upload; ``baro submit`` uploads
    ``snapshot_name`` bundles instead)."""
    return f"runs/{run_id}/source.bundle"


_SNAPSHOT = re.compile(
    r"^sources/([0-9a-f]{40}(?:[0-9a-f]{24})?)/([0-9a-f]{40}(?:[0-9a-f]{24})?)\.bundle$"
)


def snapshot_name(key: str, commit: str) -> str:
    """Where ``baro submit`` uploads a repository's history up to ``commit``: one name per
    commit, under the repository's ``key`` (its root commit), so that a later upload of
    the same repository carries only what came after an earlier one (docs/api.md)."""
    return f"sources/{key}/{commit}.bundle"


def snapshot_parts(name: str) -> tuple[str, str] | None:
    """(key, commit) of a ``snapshot_name``, None for any other object name."""
    matched = _SNAPSHOT.match(name)
    return (matched.group(1), matched.group(2)) if matched else None


def result_bundle_name(run_id: str) -> str:
    """Where the merger leaves the result of a run whose source is not a local path."""
    return f"runs/{run_id}/result.bundle"
