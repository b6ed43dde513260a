use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// What can go wrong talking to the table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item exists already, is gone, or changed since it was read.
    #[error("conditional write failed in {op}")]
    Conflict { op: &'static str },
    /// The item the operation needed is not there.
    #[error("item not found in {op}")]
    NotFound { op: &'static str },
    /// The backend answered with an error, or could not be reached.
    #[error("dynamodb {op} failed: {message}")]
    Backend { op: &'static str, message: String },
    /// An item in the table does not have the shape this code expects.
    #[error("malformed item in {op}")]
    Decode {
        op: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    /// A pagination cursor that this store did not produce.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A write would take an organization's total over its quota.
    #[error("total {resource} quota exceeded (limit {limit})")]
    QuotaExceeded {
        /// `"cpu"`, `"memory"` or `"disk"`.
        resource: &'static str,
        limit: i64,
    },
}

impl StoreError {
    pub(crate) fn backend<E, R>(op: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let conflict = match &err {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or_default();
                code == "ConditionalCheckFailedException"
                    || (code == "TransactionCanceledException"
                        && se
                            .err()
                            .message()
                            .unwrap_or_default()
                            .contains("ConditionalCheckFailed"))
            }
            _ => false,
        };
        if conflict {
            return StoreError::Conflict { op };
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
}

/// Formats an error with its whole `source()` chain.
struct DisplayChain<'a>(&'a dyn std::error::Error);

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

/// The default HTTP mapping of store failures. Handlers that can say more (which entity is missing
/// or conflicting) match on the error first.
impl From<StoreError> for cove_api_types::ApiError {
    fn from(e: StoreError) -> Self {
        use cove_api_types::ApiError;
        match e {
            StoreError::Conflict { .. } => {
                ApiError::conflict("The resource was changed concurrently; retry")
            }
            StoreError::NotFound { .. } => ApiError::not_found("Resource not found"),
            StoreError::InvalidCursor => ApiError::bad_request("Invalid cursor"),
            StoreError::QuotaExceeded { resource, limit } => {
                ApiError::bad_request(match resource {
                    "cpu" => format!("Total CPU limit exceeded. Maximum allowed: {limit}"),
                    "memory" => format!("Total memory limit exceeded. Maximum allowed: {limit}GiB"),
                    _ => format!("Total disk limit exceeded. Maximum allowed: {limit}GiB"),
                })
            }
            StoreError::Backend { .. } | StoreError::Decode { .. } => {
                tracing::error!(error = %DisplayChain(&e), "store failure");
                ApiError::internal()
            }
        }
    }
}
