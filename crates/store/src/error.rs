//! The store's one error type: what went wrong, in which operation, with no HTTP in it (the
//! mapping to the API's error envelope lives in `cove_edge::store_error`).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// What can go wrong talking to the table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost; `conflict` says which condition.
    #[error("{op}: conditional write refused ({conflict})")]
    Conflict {
        op: &'static str,
        conflict: Conflict,
    },
    /// The item the operation needed is not there.
    #[error("{op}: {entity} not found")]
    NotFound { op: &'static str, entity: Entity },
    /// The backend answered with an error, or could not be reached.
    #[error("{op}: dynamodb request failed: {message}")]
    Backend { op: &'static str, message: String },
    /// An item in the table does not have the shape this code expects.
    #[error("{op}: malformed item")]
    Decode {
        op: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    /// A pagination cursor that this store did not produce.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A user action would take an organization's total over its quota.
    #[error("total {resource} quota exceeded (limit {limit})")]
    QuotaExceeded { resource: Resource, limit: i64 },
    /// The platform's secure random source failed (ids, tokens).
    #[error("{op}: the random source failed")]
    Random {
        op: &'static str,
        #[source]
        source: getrandom::Error,
    },
}

/// Which condition of a conditional write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The item changed since it was read, or is gone (optimistic concurrency).
    #[error("changed concurrently")]
    Changed,
    /// An item with this key (id, name, token) exists already.
    #[error("exists already")]
    Exists,
    /// The sandbox name is held by another sandbox of the organization.
    #[error("sandbox name taken")]
    SandboxNameTaken,
    /// The organization is gone or being deleted: it takes no new items.
    #[error("organization gone or being deleted")]
    OrganizationDeleting,
    /// The organization still has sandboxes that are not destroyed.
    #[error("organization has sandboxes")]
    OrganizationHasSandboxes,
    /// The runner still has sandboxes assigned.
    #[error("runner has sandboxes")]
    RunnerHasSandboxes,
    /// Another owner is required and none is left.
    #[error("last owner")]
    LastOwner,
    /// The write kept losing races with other transactions.
    #[error("contention")]
    Contention,
}

/// What kind of item was missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Entity {
    #[error("organization")]
    Organization,
    #[error("user")]
    User,
    #[error("membership")]
    Membership,
    #[error("role")]
    Role,
    #[error("invitation")]
    Invitation,
    #[error("API key")]
    ApiKey,
    #[error("linked account")]
    LinkedAccount,
    #[error("sandbox")]
    Sandbox,
    #[error("runner")]
    Runner,
    #[error("snapshot")]
    Snapshot,
    #[error("volume")]
    Volume,
    #[error("bootstrap admin")]
    Admin,
}

/// A resource counted against an organization's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Resource {
    #[error("cpu")]
    Cpu,
    #[error("memory")]
    Memory,
    #[error("disk")]
    Disk,
}

impl Resource {
    /// The attribute of the usage row (and the quota field stem).
    pub fn attribute(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }
}

impl StoreError {
    /// A failed request. A refused condition of a single-item write becomes
    /// `Conflict { conflict: Changed }`: the caller, knowing the item, maps it further.
    pub(crate) fn backend<E, R>(op: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        if let SdkError::ServiceError(se) = &err
            && se.err().code() == Some("ConditionalCheckFailedException")
        {
            return StoreError::Conflict {
                op,
                conflict: Conflict::Changed,
            };
        }
        let message = match &err {
            SdkError::ServiceError(se) => format!(
                "{}: {}",
                se.err().code().unwrap_or("ServiceError"),
                se.err().message().unwrap_or_default()
            ),
            other => format!("{}", DisplayChain(other)),
        };
        StoreError::Backend { op, message }
    }

    pub(crate) fn decode(op: &'static str, source: serde_dynamo::Error) -> Self {
        StoreError::Decode { op, source }
    }

    pub(crate) fn random(op: &'static str, source: getrandom::Error) -> Self {
        StoreError::Random { op, source }
    }

    /// A request builder refused its input (a missing required field: a bug, reported as backend).
    pub(crate) fn builder(op: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            op,
            message: e.to_string(),
        }
    }

    pub(crate) fn conflict(op: &'static str, conflict: Conflict) -> Self {
        StoreError::Conflict { op, conflict }
    }

    pub(crate) fn not_found(op: &'static str, entity: Entity) -> Self {
        StoreError::NotFound { op, entity }
    }

    /// Whether a conditional write lost, whichever condition it was.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// Formats an error with its whole `source()` chain.
pub struct DisplayChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}
