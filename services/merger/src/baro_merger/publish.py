"""Publishing a delivered branch: push it, and open a pull request, only where that can work.

Local first: the branch is already in the user's repository when this runs, and nothing
here can undo that. ``--publish push|pr`` acts only when the repository has a remote and
credentials for it are available:

* a remote on this machine (a path or ``file://``) needs none;
* an ``http(s)`` remote needs ``GH_TOKEN`` / ``GITHUB_TOKEN``, an authenticated ``gh``, or a
  credential helper configured for that URL;
* an ``ssh`` remote uses the user's keys (non-interactively).

A pull request goes through ``gh pr create`` when ``gh`` is authenticated, else through the
GitHub REST API with the token. No remote or no credentials: nothing is tried, and the
result says so in one line. Each step runs once (no retries), never prompts, and every
message that leaves this module is redacted; a token travels only in the environment of
the one git or HTTP call that needs it, never on a command line.

The push runs from the user's repository (their remotes, URL rewrites and helpers apply)
with their hooks off; it writes refs only (the remote-tracking ref of the branch). ``gh``
and ``ssh`` are the ones the merger found when it started, and git reads only the global
config files that were there then (``baro_shared.usertools``): agents may have written
the home directory since.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from baro_shared import usertools
from baro_shared.gitutil import git
from baro_shared.redact import redact
from baro_shared.usertools import user_config_env

PUSH_TIMEOUT_S = 300.0
GH_TIMEOUT_S = 120.0
TOKEN_VARIABLES = ("GH_TOKEN", "GITHUB_TOKEN")

# The token reaches git through this variable, read by the credential helper below.
_TOKEN_ENV = "BARO_PUBLISH_TOKEN"
_TOKEN_HELPER = (
    '!f() { test "$1" = get || exit 0; echo username=x-access-token; '
    f'echo "password=${_TOKEN_ENV}"; }}; f'
)
_QUIET_GIT = ("-c", "core.hooksPath=/dev/null", "-c", "gc.auto=0", "-c", "maintenance.auto=false")
_PR_URL = re.compile(r"https?://\S+/pull/\d+")

Published = Literal["local", "pushed", "pr"]


@dataclass(frozen=True)
class PublishingTools:
    """The ``gh`` and ``ssh`` publishing starts (absolute), None where there is none."""

    gh: str | None
    ssh: str | None

    @classmethod
    def at_start(cls) -> PublishingTools:
        """As this process found them when it started, before any agent."""
        return cls(usertools.tool("gh"), usertools.tool("ssh"))

    @classmethod
    def on_path(cls, env: Mapping[str, str]) -> PublishingTools:
        """As ``env``'s ``PATH`` has them now."""
        path = env.get("PATH")
        return cls(shutil.which("gh", path=path), shutil.which("ssh", path=path))


@dataclass(frozen=True)
class Publication:
    published: Published
    note: str | None  # one line for the user; None when nothing was asked for
    pr_url: str | None = None


@dataclass(frozen=True)
class Remote:
    name: str
    url: str  # as configured (what names the GitHub repository)
    push_url: str  # where a push goes (URL rewrites applied)

    @property
    def kind(self) -> Literal["local", "http", "ssh"]:
        url = self.push_url
        if url.startswith(("http://", "https://")):
            return "http"
        if url.startswith("file://") or url.startswith(("/", "./", "../", "~")):
            return "local"
        if url.startswith("ssh://") or re.match(r"^[\w.-]+@[\w.-]+:", url):
            return "ssh"
        return "local" if Path(url).exists() else "ssh"

    @property
    def shown(self) -> str:
        return f"{self.name} ({strip_credentials(self.url)})"


@dataclass(frozen=True)
class GitHubRepo:
    host: str
    owner: str
    name: str

    @property
    def slug(self) -> str:
        return (
            f"{self.owner}/{self.name}"
            if self.host == "github.com"
            else f"{self.host}/{self.owner}/{self.name}"
        )

    def api_base(self, env: Mapping[str, str]) -> str:
        configured = env.get("GITHUB_API_URL")
        if configured:
            return configured.rstrip("/")
        return (
            "https://api.github.com" if self.host == "github.com" else f"https://{self.host}/api/v3"
        )


@dataclass(frozen=True)
class Credentials:
    token: str | None
    gh: bool  # an authenticated gh CLI
    helper: bool  # a git credential helper is configured for the remote's URL


# --------------------------------------------------------------------------- entry point


async def publish(
    user_repo: Path,
    branch: str,
    policy: str,
    *,
    title: str,
    body: str,
    source_ref: str | None = None,
    env: Mapping[str, str] | None = None,
    tools: PublishingTools | None = None,
) -> Publication:
    """Publish ``branch`` of ``user_repo`` as ``policy`` says (local, push or pr).

    ``source_ref`` (``refs/heads/<name>``: what the run started from) is the pull
    request's base when the remote has that branch; else the remote's default branch.
    ``tools``: the ``gh`` and ``ssh`` to start (the merger's, found at its start); by
    default those on ``env``'s ``PATH`` now.
    """
    result = await _publish(
        user_repo,
        branch,
        policy,
        title=title,
        body=body,
        source_ref=source_ref,
        env=env,
        tools=tools,
    )
    note = redact(strip_credentials(result.note)) if result.note else None
    return Publication(result.published, note, result.pr_url)


async def _publish(
    user_repo: Path,
    branch: str,
    policy: str,
    *,
    title: str,
    body: str,
    source_ref: str | None,
    env: Mapping[str, str] | None,
    tools: PublishingTools | None,
) -> Publication:
    if policy not in ("push", "pr"):
        return Publication("local", None)
    env = dict(os.environ if env is None else env)
    tools = tools or PublishingTools.on_path(env)
    here = f"{branch} is in your repository only"
    remote, why_none = await find_remote(user_repo)
    if remote is None:
        return Publication("local", f"{here}: {why_none}, so nothing was published")
    credentials = await find_credentials(user_repo, remote, env, tools.gh)
    if remote.kind == "http" and not (credentials.token or credentials.gh or credentials.helper):
        return Publication(
            "local",
            f"{here}: no credentials for {remote.shown} (set GH_TOKEN or GITHUB_TOKEN, or run "
            "`gh auth login`), so nothing was published",
        )
    pushed = await push(user_repo, remote, branch, credentials, env, tools)
    if pushed is not None:
        return Publication("local", f"{here}: {pushed}")
    done = f"pushed {branch} to {remote.shown}"
    if policy == "push":
        return Publication("pushed", done)
    base = await pick_base(user_repo, remote, source_ref, branch)
    return await open_pull_request(
        user_repo,
        remote,
        branch,
        credentials,
        env,
        title=title,
        body=body,
        base=base,
        done=done,
        gh=tools.gh,
    )


# --------------------------------------------------------------------------- remote


async def find_remote(user_repo: Path) -> tuple[Remote | None, str]:
    """The remote to publish to (``origin``, else the only one), or why there is none."""
    listed = await git("remote", cwd=user_repo, check=False)
    names = listed.stdout.split()
    if not names:
        return None, "it has no remote"
    if "origin" in names:
        name = "origin"
    elif len(names) == 1:
        name = names[0]
    else:
        return None, f"it has several remotes ({', '.join(names)}) and none is named origin"
    url = await git("config", "--get", f"remote.{name}.url", cwd=user_repo, check=False)
    push_url = await git("remote", "get-url", "--push", name, cwd=user_repo, check=False)
    if not url.out or not push_url.out:
        return None, f"its remote {name} has no URL"
    return Remote(name, url.out, push_url.out), ""


async def pick_base(
    user_repo: Path, remote: Remote, source_ref: str | None, branch: str
) -> str | None:
    """The pull request's base branch, as far as the user's repository knows the remote."""
    if source_ref and source_ref.startswith("refs/heads/"):
        name = source_ref.removeprefix("refs/heads/")
        tracking = f"refs/remotes/{remote.name}/{name}"
        known = await git(
            "rev-parse",
            "--verify",
            "--quiet",
            tracking,
            cwd=user_repo,
            check=False,
        )
        if name != branch and known.returncode == 0:
            return name
    default = await git(
        "symbolic-ref", "--quiet", f"refs/remotes/{remote.name}/HEAD", cwd=user_repo, check=False
    )
    prefix = f"refs/remotes/{remote.name}/"
    if default.returncode == 0 and default.out.startswith(prefix):
        return default.out.removeprefix(prefix)
    return None


def github_repository(url: str) -> GitHubRepo | None:
    """host/owner/name of a GitHub-style remote URL (https, ssh or scp-like), else None."""
    patterns = (
        r"^https?://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$",
        r"^ssh://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$",
        r"^(?:[^@/]+@)?(?P<host>[^/:]+):(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$",
    )
    for pattern in patterns:
        match = re.match(pattern, url.strip())
        if match:
            return GitHubRepo(match["host"].lower(), match["owner"], match["name"])
    return None


def strip_credentials(text: str) -> str:
    """``https://user:secret@host/x`` -> ``https://host/x``, anywhere in ``text``."""
    return re.sub(r"(\w+://)[^@/\s]+@", r"\1", text)


# --------------------------------------------------------------------------- credentials


async def find_credentials(
    user_repo: Path, remote: Remote, env: Mapping[str, str], gh: str | None
) -> Credentials:
    token = next((env[name] for name in TOKEN_VARIABLES if env.get(name, "").strip()), None)
    helper = False
    if remote.kind == "http":
        configured = await git(
            "config", "--get-urlmatch", "credential.helper", remote.push_url,
            cwd=user_repo, check=False,
        )  # fmt: skip
        helper = bool(configured.out)
    return Credentials(token=token, gh=await gh_authenticated(env, gh), helper=helper)


async def gh_authenticated(env: Mapping[str, str], gh: str | None) -> bool:
    if gh is None:
        return False
    code, _, _ = await _run([gh, "auth", "status"], env=_gh_env(env), timeout=30)
    return code == 0


# --------------------------------------------------------------------------- push


async def push(
    user_repo: Path,
    remote: Remote,
    branch: str,
    credentials: Credentials,
    env: Mapping[str, str],
    tools: PublishingTools,
) -> str | None:
    """Push the branch once; None when it worked, else why not (one redacted line)."""
    config = list(_QUIET_GIT)
    extra: dict[str, str] = {}
    if remote.kind == "http":
        if credentials.token:
            config += ["-c", f"credential.helper={_TOKEN_HELPER}"]
            extra[_TOKEN_ENV] = credentials.token
        elif credentials.gh and tools.gh:
            config += ["-c", f"credential.helper=!{shlex.quote(tools.gh)} auth git-credential"]
    if remote.kind == "ssh" and not env.get("GIT_SSH_COMMAND"):
        if tools.ssh is None:
            return f"pushing it to {remote.shown} needs ssh, which is not on PATH"
        extra["GIT_SSH_COMMAND"] = f"{shlex.quote(tools.ssh)} -o BatchMode=yes -o ConnectTimeout=20"
    ref = f"refs/heads/{branch}"
    result = await git(
        *config, "push", "--quiet", "--no-verify", "--porcelain", remote.name, f"{ref}:{ref}",
        cwd=user_repo, check=False, env=extra, timeout=PUSH_TIMEOUT_S,
    )  # fmt: skip
    if result.returncode == 0:
        return None
    return f"pushing it to {remote.shown} failed ({_last_line(result.stderr or result.stdout)})"


# --------------------------------------------------------------------------- pull request


async def open_pull_request(
    user_repo: Path,
    remote: Remote,
    branch: str,
    credentials: Credentials,
    env: Mapping[str, str],
    *,
    title: str,
    body: str,
    base: str | None,
    done: str,
    gh: str | None,
) -> Publication:
    github = github_repository(remote.url)
    if credentials.gh and gh:  # gh also knows hosts and remotes this module cannot parse
        return await _pr_with_gh(gh, user_repo, github, branch, env, title, body, base, done)
    if credentials.token and github is not None:
        return await _pr_with_api(github, branch, credentials.token, env, title, body, base, done)
    why = (
        "gh is not installed or not logged in, and GH_TOKEN / GITHUB_TOKEN is not set"
        if github is not None or not credentials.token
        else f"{remote.shown} is not a GitHub repository the API can address"
    )
    return Publication("pushed", f"{done}; no pull request was opened: {why}")


async def _pr_with_gh(
    gh: str,
    user_repo: Path,
    github: GitHubRepo | None,
    branch: str,
    env: Mapping[str, str],
    title: str,
    body: str,
    base: str | None,
    done: str,
) -> Publication:
    argv = [gh, "pr", "create"]
    if github is not None:
        argv += ["--repo", github.slug]
    argv += ["--head", branch, "--title", title, "--body-file", "-"]
    if base:
        argv += ["--base", base]
    code, out, err = await _run(
        argv, env=_gh_env(env), cwd=user_repo, input=body.encode(), timeout=GH_TIMEOUT_S
    )
    found = _PR_URL.search(out) or _PR_URL.search(err)
    if code == 0 and found:
        return Publication("pr", f"{done} and opened {found.group(0)}", found.group(0))
    if found and "already exists" in err:
        url = found.group(0)
        return Publication("pr", f"{done}, which updates the open pull request {url}", url)
    return Publication(
        "pushed", f"{done}; gh could not open the pull request ({_last_line(err or out)})"
    )


async def _pr_with_api(
    github: GitHubRepo,
    branch: str,
    token: str,
    env: Mapping[str, str],
    title: str,
    body: str,
    base: str | None,
    done: str,
) -> Publication:
    api = f"{github.api_base(env)}/repos/{github.owner}/{github.name}"
    try:
        if base is None:
            status, repo_info = await _api("GET", api, token)
            base = repo_info.get("default_branch") if status == 200 else None
            if not base:
                return Publication(
                    "pushed", f"{done}; no pull request: cannot read {github.slug} ({status})"
                )
        payload = {"title": title, "head": branch, "base": base, "body": body}
        status, created = await _api("POST", f"{api}/pulls", token, payload)
        if status == 201 and created.get("html_url"):
            url = str(created["html_url"])
            return Publication("pr", f"{done} and opened {url}", url)
        if status == 422:
            listed_status, listed = await _api(
                "GET", f"{api}/pulls?state=open&head={github.owner}:{branch}", token
            )
            if listed_status == 200 and isinstance(listed, list) and listed:
                url = str(listed[0].get("html_url"))
                return Publication("pr", f"{done}, which updates the open pull request {url}", url)
        message = created.get("message") if isinstance(created, dict) else None
        return Publication(
            "pushed",
            f"{done}; the GitHub API did not open the pull request ({status}"
            + (f": {redact(str(message))}" if message else "")
            + ")",
        )
    except OSError as exc:
        return Publication(
            "pushed", f"{done}; the GitHub API could not be reached ({redact(str(exc))})"
        )


async def _api(
    method: str, url: str, token: str, payload: object | None = None
) -> tuple[int, dict]:
    def call() -> tuple[int, dict]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"{}")
            except ValueError:
                return error.code, {}
        except ValueError:
            return 0, {}

    return await asyncio.to_thread(call)


# --------------------------------------------------------------------------- processes


def _gh_env(env: Mapping[str, str]) -> dict[str, str]:
    """``gh``'s environment: the git it starts is baro's (found at the start, first on its
    ``PATH``), and that git reads the user's config as publishing's own does."""
    out = dict(env)
    git_folder = os.path.dirname(usertools.tool("git") or "")
    if git_folder:
        out["PATH"] = os.pathsep.join(p for p in (git_folder, env.get("PATH")) if p)
    out.update(user_config_env())
    out.update(
        GH_PROMPT_DISABLED="1",
        GH_NO_UPDATE_NOTIFIER="1",
        GH_SPINNER_DISABLED="1",
        NO_COLOR="1",
        GIT_TERMINAL_PROMPT="0",
    )
    return out


async def _run(
    argv: list[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> tuple[int, str, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return 127, "", f"cannot start {argv[0]}: {exc}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, "", f"{argv[0]} timed out after {timeout:.0f}s"
    return proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return redact(strip_credentials(lines[-1]))[:300] if lines else "no details"
