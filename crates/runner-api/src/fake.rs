//! Fault injection of the simulated runner (`cove-runner --runtime fake` only; the routes do not
//! exist in Docker mode).
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/fake/sandboxes/{id}/crash` | – | 204: the sandbox's container dies (exit 137) as if OOM-killed; the agent notices and reports it |
//! | `POST /v1/fake/delay` | [`FakeDelay`] | 204: the next engine call(s) of that kind take `seconds`, or hang |

use serde::{Deserialize, Serialize};

/// `POST /v1/fake/delay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FakeDelay {
    pub op: FakeOp,
    /// How long the call takes; absent: it hangs (until the agent's engine-call deadline ends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// How many calls are delayed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

/// Which engine calls a [`FakeDelay`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum FakeOp {
    /// The engine calls of a `PUT` (container create, start or stop: whichever comes first).
    Put,
    /// Container removal (`DELETE /v1/sandboxes/{id}`).
    Delete,
    /// `docker commit` (`POST /v1/sandboxes/{id}/backup`).
    Backup,
    /// The pull or build of a snapshot job (`PUT /v1/snapshots/{key}`).
    Snapshot,
}
