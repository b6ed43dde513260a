"""Shared parts of the Python suites (tests/e2e, tests/sdk): the binaries, `cove up` as a process
on 127.0.0.1:0 read for its DAYTONA_API_URL / DAYTONA_API_KEY lines, stopping processes by PID,
container cleanup by runner label, HS256 JWTs. The Rust counterpart is `crates/testkit`."""

from covetest.bins import ROOT, binary, target_dir
from covetest.conftests import bind_conftest
from covetest.jwt import mint_jwt, new_secret
from covetest.process import CoveProcess, ReadyLines, remove_containers, stop_process

__all__ = [
    "ROOT",
    "CoveProcess",
    "ReadyLines",
    "bind_conftest",
    "binary",
    "mint_jwt",
    "new_secret",
    "remove_containers",
    "stop_process",
    "target_dir",
]
