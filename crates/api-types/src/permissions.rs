//! Organization permissions, as Daytona names them (`CreateApiKey.permissions`, role permissions).

use serde::{Deserialize, Serialize};

macro_rules! permissions {
    ($($variant:ident => $wire:literal),+ $(,)?) => {
        /// A permission held through an API key or an assigned organization role.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Permission {
            $(#[serde(rename = $wire)] $variant,)+
        }

        string_enum_schema!(Permission);

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $wire,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some(Permission::$variant),)+ _ => None }
            }
        }
    };
}

permissions! {
    WriteRegistries => "write:registries",
    DeleteRegistries => "delete:registries",
    WriteSnapshots => "write:snapshots",
    DeleteSnapshots => "delete:snapshots",
    WriteSandboxes => "write:sandboxes",
    DeleteSandboxes => "delete:sandboxes",
    ReadVolumes => "read:volumes",
    WriteVolumes => "write:volumes",
    DeleteVolumes => "delete:volumes",
    WriteRegions => "write:regions",
    DeleteRegions => "delete:regions",
    ReadRunners => "read:runners",
    WriteRunners => "write:runners",
    DeleteRunners => "delete:runners",
    ReadAuditLogs => "read:audit_logs",
    ManageApiKeys => "manage:api_keys",
    ManageSecrets => "manage:secrets",
    ReadLimits => "read:limits",
    ManageSso => "manage:sso",
    ReadBilling => "read:billing",
    ManageBilling => "manage:billing",
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for p in Permission::ALL {
            let s = serde_json::to_string(p).unwrap();
            assert_eq!(s, format!("\"{}\"", p.as_str()));
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
        }
        assert!(serde_json::from_str::<Permission>("\"write:everything\"").is_err());
    }
}
