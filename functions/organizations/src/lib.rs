//! The `organizations` edge function: `/api/organizations`, `/api/users`, `/api/config` and
//! `/api/health` (CONTRACT §8).
//!
//! Organizations and users routes take a JWT (API keys get 403); `config` and `health` are public.
//! A path `{organizationId}` must be an organization the caller is a member of (403 otherwise);
//! what the caller may do there is decided by `cove_edge::authz`.
//!
//! # Roles and permissions
//!
//! * A member is an `owner` or a `member`. Owners hold every permission and alone manage the
//!   organization (members, roles, invitations, deletion). The last owner can neither leave, be
//!   removed nor be demoted (403); a personal organization can be neither deleted nor left (403).
//! * Members hold the permissions of their assigned roles: the global roles
//!   (`cove_store::roles::GLOBAL_ROLES`: Developer, Sandboxes Admin, Snapshots Admin, Registries
//!   Admin, Volumes Admin, Auditor) and the organization's own roles. Permissions are Daytona's
//!   (`write:sandboxes`, `delete:sandboxes`, `write:snapshots`, ..., see
//!   `cove_api_types::permissions::Permission`). Nobody can grant (to a role, an invitation, a
//!   member or an API key) a permission they do not hold (403).
//! * System admins (`SystemRole::Admin`) set quotas, suspend/unsuspend organizations and manage
//!   users. A suspended organization may read but not create or start resources
//!   (`Action::Create` → 403 with the reason).

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod keypair;
mod routes;
pub mod service;

pub use routes::{ApiDoc, handle, router};

cove_edge::component!(crate::handle);
