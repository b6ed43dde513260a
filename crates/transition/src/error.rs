//! The crate's one error type.

use cove_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// Another state change is in flight (or won the race to begin).
    #[error("a state change of the sandbox is in progress")]
    InProgress,
    /// The sandbox's row is gone.
    #[error("the sandbox is gone")]
    Gone,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TransitionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict {
                conflict: cove_store::Conflict::Changed | cove_store::Conflict::Contention,
                ..
            } => Self::InProgress,
            other => Self::Store(other),
        }
    }
}
