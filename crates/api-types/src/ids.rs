//! Typed identifiers: a bad id never deserializes, and ids of different kinds can't be mixed up.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub reason: &'static str,
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $validate:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                $validate(&s).map_err(|reason| IdError { kind: $kind, reason })?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

fn uuid_like(s: &str) -> Result<(), &'static str> {
    uuid::Uuid::parse_str(s)
        .map(|_| ())
        .map_err(|_| "must be a UUID")
}

/// Ids that come from outside (a JWT `sub`): printable, no `#` (our key separator), at most 128 bytes.
fn external_id(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 128 {
        return Err("must be 1 to 128 characters");
    }
    if s.chars()
        .any(|c| c.is_control() || c == '#' || c.is_whitespace())
    {
        return Err("must not contain whitespace, control characters or '#'");
    }
    Ok(())
}

typed_id!(
    /// An organization (UUID v4).
    OrganizationId, "organization id", uuid_like
);
typed_id!(
    /// A user: the identity provider's subject (`sub`), or a UUID for users Cove creates.
    UserId, "user id", external_id
);

typed_id!(
    /// A sandbox (UUID v4, CONTRACT §4.2: also its default name).
    SandboxId, "sandbox id", uuid_like
);
typed_id!(
    /// A runner (UUID v4).
    RunnerId, "runner id", uuid_like
);
typed_id!(
    /// A snapshot (UUID v4).
    SnapshotId, "snapshot id", uuid_like
);
typed_id!(
    /// A volume (UUID v4).
    VolumeId, "volume id", uuid_like
);

/// Kinds whose ids Cove mints as UUIDs v4.
macro_rules! random_uuid_ids {
    ($($name:ident),+) => {$(
        impl $name {
            /// A fresh UUID v4 (from the platform's secure random source).
            pub fn new_random() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }
        }
    )+};
}

random_uuid_ids!(OrganizationId, SandboxId, RunnerId, SnapshotId, VolumeId);

impl UserId {
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ids_at_deserialization() {
        assert!(serde_json::from_str::<OrganizationId>("\"not-a-uuid\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"a#b\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        let id: UserId = serde_json::from_str("\"auth0|123\"").unwrap();
        assert_eq!(id.as_str(), "auth0|123");
        let org = OrganizationId::new_random();
        assert_eq!(OrganizationId::parse(org.to_string()).unwrap(), org);
        let sb = SandboxId::new_random();
        assert_eq!(serde_json::to_string(&sb).unwrap(), format!("\"{sb}\""));
        assert_eq!(SandboxId::parse(sb.as_str()).unwrap(), sb);
        assert!(SandboxId::parse("my-sandbox").is_err());
        assert!(serde_json::from_str::<RunnerId>("\"runner-1\"").is_err());
        assert_ne!(RunnerId::new_random(), RunnerId::new_random());
        assert!(VolumeId::parse(VolumeId::new_random().to_string()).is_ok());
        assert!(SnapshotId::parse(SnapshotId::new_random().to_string()).is_ok());
    }
}
