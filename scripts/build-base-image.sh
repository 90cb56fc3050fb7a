#!/usr/bin/env bash
# A debian:bookworm-slim equivalent built from Debian packages, for hosts that cannot pull from Docker Hub.
# debootstrap --variant=minbase gives the same essential+apt package set as the official slim image; the same
# trims (docs, man pages, locales, apt lists) keep it small. Needs root, debootstrap and a reachable Debian mirror.
#   scripts/build-base-image.sh [TAG]          (default tag: sjscc/debian:bookworm-slim)
# Environment: DEBIAN_MIRROR (default: the first deb.debian.org-style URI apt uses here, else deb.debian.org).
set -euo pipefail

tag="${1:-sjscc/debian:bookworm-slim}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
    mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/* /etc/apt/sources.list \
             2>/dev/null | awk '{print $2}' | head -n1 || true)
    mirror="${mirror:-http://deb.debian.org/debian}"
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "build-base-image: debootstrap needs root" >&2
    exit 1
fi
for tool in debootstrap docker; do
    command -v "$tool" >/dev/null || { echo "build-base-image: $tool is not installed" >&2; exit 1; }
done

root=$(mktemp -d /tmp/sjscc-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "build-base-image: debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
# Security updates, as the official image has them at its build date.
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SOURCES
# The official slim image's dpkg excludes: no docs, man pages or locales installed by later apt-get installs.
cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
echo 'APT::Install-Recommends "false";' > "$root/etc/apt/apt.conf.d/99-no-recommends"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/tmp/*

tar -C "$root" --numeric-owner -c . | docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase $suite ($mirror)" - "$tag" >/dev/null
echo "build-base-image: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
