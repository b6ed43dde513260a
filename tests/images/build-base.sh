#!/usr/bin/env bash
# Builds the Cove sandbox base image without any registry:
#   debootstrap --variant=minbase bookworm  ->  docker import  ->  docker build (python, node + tsx, git, build tools, user daytona with sudo)
# Tags cove-sandbox-base:<content-hash> and cove-sandbox-base:latest; the hash covers this script and
# base.Dockerfile, so a repeated run reuses the image. Progress goes to stderr; the last stdout line is the tag.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bash "$root/scripts/docker.sh" >&2

hash="$(cat "$here/build-base.sh" "$here/base.Dockerfile" | sha256sum | cut -c1-16)"
tag="cove-sandbox-base:$hash"
log() { echo "build-base: $*" >&2; }

if docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" cove-sandbox-base:latest >&2
    echo "$tag"
    exit 0
fi

# Serialise concurrent builders (parallel test binaries).
exec 9>"/tmp/cove-build-base.lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" cove-sandbox-base:latest >&2
    echo "$tag"
    exit 0
fi

# The rootfs depends on this script only, so Dockerfile edits do not re-run debootstrap.
rootfs_tag="cove-bookworm-minbase:$(sha256sum "$here/build-base.sh" | cut -c1-16)"
if ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
    fi
    dir="$(mktemp -d /tmp/cove-rootfs.XXXXXX)"
    trap 'rm -rf "$dir"' EXIT
    log "debootstrap bookworm into $dir (about 1-2 min)"
    debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >&2
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    log "docker import"
    tar -C "$dir" -c . | docker import - "$rootfs_tag" >&2
    rm -rf "$dir"
    trap - EXIT
fi

log "docker build"
ctx="$(mktemp -d /tmp/cove-ctx.XXXXXX)"
cp "$here/base.Dockerfile" "$ctx/Dockerfile"
log "npm install -g --prefix (npm, tsx, typescript)"
npm install --global --prefix "$ctx/npm-global" --no-audit --no-fund --no-update-notifier \
    --cache "$ctx/npm-cache" npm@10.9.9 tsx@4.23.15 typescript@5.9.3 >&2
rm -rf "$ctx/npm-cache"
DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE=$rootfs_tag" \
    --label "cove.image.hash=$hash" -t "$tag" "$ctx" >&2
rm -rf "$ctx"
docker tag "$tag" cove-sandbox-base:latest >&2
echo "$tag"
