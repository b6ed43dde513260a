//! Every shared test fixture of Cove, one module per job.
//!
//! | module | what it gives a test |
//! |---|---|
//! | [`dynamo`] | a [`Store`](cove_store::Store) on a fresh table of a real DynamoDB API ([`store`]) |
//! | [`jwt`] | HS256 JWTs with the usual claims ([`jwt::token`], [`jwt::Claims`]) |
//! | [`bins`] | `cove`, `cove-runner`, the musl toolbox daemon, wasm components: located, built when missing |
//! | [`image`] | the Docker engine and the sandbox base image; container cleanup by runner label |
//! | [`agent`] | a `cove-runner` process, simulated or on Docker, with fault injection ([`Agent`]) |
//! | [`cove`] | a `cove up` process, with no runner, its own Docker runner or a simulated one ([`Cove`]) |
//! | [`harness`] | an in-process function's `Env` on a fresh table with JWTs and a registered runner ([`Harness`]) |
//! | [`api`], [`inprocess`] | one way to call the public API: in-process handlers or a running `cove` |
//! | [`org`] | users, organizations, API keys, runners made through that API |
//! | [`registry`] | a Debian `docker-registry` on a loopback port, optionally with htpasswd auth; pushing an image into it |
//! | [`procfs`] | memory and CPU time of a process, its children |
//!
//! Setting up returns [`Result`] (a benchmark can report the error; a test unwraps it);
//! helpers that assert what the API answers panic with the answer in the message. Processes are
//! started on `127.0.0.1:0` and waited for by the line they print when ready, and are killed by
//! their PID when their guard drops; agents' containers are removed by their `cove.runner` label.
//!
//! Environment: `COVE_TEST_DYNAMODB_ENDPOINT` (an external DynamoDB instead of dynoxide),
//! `COVE_BIN`, `COVE_RUNNER_BIN`, `COVE_TOOLBOX_BIN` (binaries instead of the target dir's),
//! `CARGO_TARGET_DIR`, `COVE_SANDBOX_IMAGE` (an image instead of `tests/images/build-base.sh`'s).
//! The Python suites' counterpart is `tests/covetest`.

pub mod agent;
pub mod api;
pub mod bins;
pub mod cove;
pub mod dynamo;
pub mod error;
pub mod harness;
pub mod image;
pub mod inprocess;
pub mod jwt;
pub mod org;
pub mod process;
pub mod procfs;
pub mod registry;

pub use agent::{Agent, AgentOptions, FAKE_IMAGE, Runtime};
pub use api::{Api, Call, Http, Reply};
pub use cove::{Cove, CoveOptions, Manifest, Runner};
pub use dynamo::{dynamodb_endpoint, store};
pub use error::{Error, Result};
pub use harness::Harness;
pub use inprocess::InProcess;
pub use jwt::TEST_SECRET;
pub use registry::{Registry, RegistryOptions};
