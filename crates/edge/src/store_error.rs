//! The default HTTP answer for a store failure: the one `StoreError → ApiError` mapping and its
//! user-facing messages. Handlers that can say more (which sandbox name is taken, which member is
//! missing) match on the error first and fall back to this.
//!
//! `ApiError` lives in `cove-api-types` and `StoreError` in `cove-store`, so the mapping can't be a
//! `From` impl here: [`IntoApi::api`] stands in for it, on errors and
//! results alike (`store.get(..).await.api()?`, `Err(e) => Err(e.api())`).

use cove_api_types::ApiError;
use cove_store::{Conflict, DisplayChain, Entity, Resource, StoreError};

/// The API's answer for `e`. Internal failures are logged with their whole chain and answered
/// with a bare 500.
pub fn api_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { conflict, .. } => conflict_error(conflict),
        StoreError::NotFound { entity, .. } => ApiError::not_found(not_found_message(entity)),
        StoreError::InvalidCursor => ApiError::bad_request("Invalid cursor"),
        StoreError::QuotaExceeded { resource, limit } => {
            ApiError::bad_request(quota_message(resource, limit))
        }
        StoreError::Backend { .. } | StoreError::Decode { .. } | StoreError::Random { .. } => {
            tracing::error!(error = %DisplayChain(&e), "store failure");
            ApiError::internal()
        }
    }
}

fn conflict_error(c: Conflict) -> ApiError {
    match c {
        Conflict::OrganizationDeleting => ApiError::not_found("Organization not found"),
        Conflict::OrganizationHasSandboxes => ApiError::bad_request(
            "Organization has sandboxes; delete them before deleting the organization",
        ),
        Conflict::RunnerHasSandboxes => ApiError::bad_request(
            "Runner still has sandboxes assigned; delete them first or pass force=true",
        ),
        Conflict::SandboxNameTaken => ApiError::conflict("Sandbox name already exists"),
        Conflict::Exists => ApiError::conflict("The resource exists already"),
        Conflict::LastOwner => ApiError::conflict("The organization must keep at least one owner"),
        Conflict::Changed | Conflict::Contention => {
            ApiError::conflict("The resource was changed concurrently; retry")
        }
    }
}

fn not_found_message(entity: Entity) -> &'static str {
    match entity {
        Entity::Organization => "Organization not found",
        Entity::User | Entity::Admin => "User not found",
        Entity::Membership => "Membership not found",
        Entity::Role => "Role not found",
        Entity::Invitation => "Invitation not found",
        Entity::ApiKey => "API key not found",
        Entity::LinkedAccount => "Linked account not found",
        Entity::Sandbox => "Sandbox not found",
        Entity::Runner => "Runner not found",
        Entity::Snapshot => "Snapshot not found",
        Entity::Volume => "Volume not found",
    }
}

/// Daytona's messages (CONTRACT §8.1).
fn quota_message(resource: Resource, limit: i64) -> String {
    match resource {
        Resource::Cpu => format!("Total CPU limit exceeded. Maximum allowed: {limit}"),
        Resource::Memory => format!("Total memory limit exceeded. Maximum allowed: {limit}GiB"),
        Resource::Disk => format!("Total disk limit exceeded. Maximum allowed: {limit}GiB"),
    }
}

/// `.api()` on a store error or result: the error mapped by [`api_error`].
pub trait IntoApi {
    type Api;
    fn api(self) -> Self::Api;
}

impl<T> IntoApi for Result<T, StoreError> {
    type Api = Result<T, ApiError>;
    fn api(self) -> Result<T, ApiError> {
        self.map_err(api_error)
    }
}

impl IntoApi for StoreError {
    type Api = ApiError;
    fn api(self) -> ApiError {
        api_error(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        let conflict = |c| {
            api_error(StoreError::Conflict {
                op: "Op",
                conflict: c,
            })
        };
        assert_eq!(conflict(Conflict::Changed).status, 409);
        assert_eq!(conflict(Conflict::Contention).status, 409);
        assert_eq!(conflict(Conflict::OrganizationDeleting).status, 404);
        assert_eq!(conflict(Conflict::OrganizationHasSandboxes).status, 400);
        let nf = api_error(StoreError::NotFound {
            op: "Op",
            entity: Entity::Runner,
        });
        assert_eq!((nf.status, nf.message.as_str()), (404, "Runner not found"));
        let q = api_error(StoreError::QuotaExceeded {
            resource: Resource::Disk,
            limit: 8,
        });
        assert_eq!(
            (q.status, q.message.as_str()),
            (400, "Total disk limit exceeded. Maximum allowed: 8GiB")
        );
        let q = api_error(StoreError::QuotaExceeded {
            resource: Resource::Cpu,
            limit: 10,
        });
        assert_eq!(q.message, "Total CPU limit exceeded. Maximum allowed: 10");
        let q = api_error(StoreError::QuotaExceeded {
            resource: Resource::Memory,
            limit: 4,
        });
        assert_eq!(
            q.message,
            "Total memory limit exceeded. Maximum allowed: 4GiB"
        );
        assert_eq!(api_error(StoreError::InvalidCursor).status, 400);
        let backend = api_error(StoreError::Backend {
            op: "Op",
            message: "boom".into(),
        });
        assert_eq!(backend.status, 500);
        assert!(
            !backend.message.contains("boom"),
            "no internals in the answer"
        );
    }
}
