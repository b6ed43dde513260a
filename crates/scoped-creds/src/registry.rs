//! Registry credentials scoped to the project `cove-{org}` of the internal registry.

use crate::{Claims, CredsError, Kind};

/// Username of a push-access credential: `cove-push-<orgId>`.
pub const REGISTRY_USER_PREFIX: &str = "cove-push-";

/// The project (repository namespace) of an organization: `cove-<orgId>`.
pub fn project_of(org: &str) -> String {
    format!("cove-{org}")
}

/// What `docker-registry/registry-push-access` hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    pub username: String,
    pub password: String,
    pub project: String,
    pub claims: Claims,
}

/// Mints a push/pull credential for `org`'s project, valid until `exp` (unix s).
pub fn mint_registry(secret: &[u8], org: &str, exp: u64) -> Result<RegistryCredential, CredsError> {
    let project = project_of(org);
    let claims = Claims::new(Kind::Registry, org, project.clone(), exp)?;
    Ok(RegistryCredential {
        username: format!("{REGISTRY_USER_PREFIX}{org}"),
        password: claims.sign(secret)?,
        project,
        claims,
    })
}

/// Verifies Basic credentials `username`/`password` and returns the project they cover.
pub fn verify_registry(
    secret: &[u8],
    username: &str,
    password: &str,
    now: u64,
) -> Result<String, CredsError> {
    let org = username
        .strip_prefix(REGISTRY_USER_PREFIX)
        .ok_or(CredsError::Malformed)?;
    let claims = Claims::verify(password, secret, Kind::Registry, now)?;
    if claims.org != org || claims.scope != project_of(org) {
        return Err(CredsError::OutOfScope {
            wanted: project_of(org),
        });
    }
    Ok(claims.scope)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_push_credential_covers_its_own_project_only() {
        let c = mint_registry(b"k", "org-a", 100).unwrap();
        assert_eq!(c.username, "cove-push-org-a");
        assert_eq!(c.project, "cove-org-a");
        assert_eq!(
            verify_registry(b"k", &c.username, &c.password, 10).unwrap(),
            "cove-org-a"
        );
        assert!(matches!(
            verify_registry(b"k", "cove-push-org-b", &c.password, 10),
            Err(CredsError::OutOfScope { .. })
        ));
        assert_eq!(
            verify_registry(b"k", &c.username, &c.password, 100),
            Err(CredsError::Expired { exp: 100 })
        );
        assert_eq!(
            verify_registry(b"k", "admin", &c.password, 10),
            Err(CredsError::Malformed)
        );
        let s3 = crate::mint_s3(b"k", "org-a", 100).unwrap();
        assert!(matches!(
            verify_registry(b"k", &c.username, &s3.session_token, 10),
            Err(CredsError::WrongKind { .. })
        ));
    }
}
