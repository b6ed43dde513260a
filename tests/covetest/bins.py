"""Where the workspace's binaries are: `$COVE_BIN` / `$COVE_RUNNER_BIN`, else the target directory
(`$CARGO_TARGET_DIR`, else `<repo>/target`) `release/<name>`."""

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]

_OVERRIDES = {"cove": "COVE_BIN", "cove-runner": "COVE_RUNNER_BIN"}


def target_dir():
    """`$CARGO_TARGET_DIR` (relative to the repository when relative), else `<repo>/target`."""
    value = os.environ.get("CARGO_TARGET_DIR")
    if not value:
        return ROOT / "target"
    path = pathlib.Path(value)
    return path if path.is_absolute() else ROOT / path


def binary(name):
    """The path of `cove` or `cove-runner`; fails with the build command when it is missing."""
    override = os.environ.get(_OVERRIDES[name])
    path = pathlib.Path(override) if override else target_dir() / "release" / name
    assert path.exists(), f"{path} is missing: run `cargo build --release --workspace --bins`"
    return str(path)
