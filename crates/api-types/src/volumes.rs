//! `/api/volumes` wire types (CONTRACT §6, upstream `VolumeDto`, `CreateVolume`, `VolumeState`).
//!
//! The timestamps of a [`VolumeDto`] are plain strings (not datetimes as on other DTOs);
//! `errorReason` is required but nullable, `lastUsedAt` optional and nullable: both are always
//! serialized.

use serde::{Deserialize, Serialize};

/// State of a volume (CONTRACT §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeState {
    Creating,
    Ready,
    PendingCreate,
    PendingDelete,
    Deleting,
    Deleted,
    Error,
}

string_enum_schema!(VolumeState);

impl VolumeState {
    pub const ALL: &'static [VolumeState] = &[
        Self::Creating,
        Self::Ready,
        Self::PendingCreate,
        Self::PendingDelete,
        Self::Deleting,
        Self::Deleted,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Ready => "ready",
            Self::PendingCreate => "pending_create",
            Self::PendingDelete => "pending_delete",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// States that count against the organization's volume quota (CONTRACT §8).
    pub fn counts_against_quota(self) -> bool {
        matches!(
            self,
            Self::Creating
                | Self::Ready
                | Self::PendingCreate
                | Self::PendingDelete
                | Self::Deleting
        )
    }

    /// States the lifecycle sweep drives (each has a deadline).
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            Self::PendingCreate | Self::Creating | Self::PendingDelete | Self::Deleting
        )
    }
}

impl std::fmt::Display for VolumeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /volumes` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateVolume {
    pub name: String,
}

/// A volume (`VolumeDto`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VolumeDto {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub state: VolumeState,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    pub error_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_count_as_daytona() {
        for s in VolumeState::ALL {
            let j = serde_json::to_string(s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            assert_eq!(VolumeState::parse(s.as_str()), Some(*s));
        }
        assert!(!VolumeState::Deleted.counts_against_quota());
        assert!(!VolumeState::Error.counts_against_quota());
        assert!(VolumeState::PendingDelete.counts_against_quota());
    }

    #[test]
    fn the_dto_always_carries_the_nullable_fields() {
        let d = VolumeDto {
            id: "i".into(),
            name: "n".into(),
            organization_id: "o".into(),
            state: VolumeState::PendingCreate,
            created_at: "t".into(),
            updated_at: "t".into(),
            last_used_at: None,
            error_reason: None,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["state"], "pending_create");
        assert!(v["lastUsedAt"].is_null() && v.get("lastUsedAt").is_some());
        assert!(v.get("errorReason").is_some());
    }
}
