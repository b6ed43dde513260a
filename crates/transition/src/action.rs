//! The typed description of each state change: what it wants, what the sandbox shows meanwhile,
//! what it asks of the runner. How each outcome settles is in `settle`.

use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
use cove_runner_api::DesiredState;
use cove_store::sandboxes::SandboxAction;

/// What an action asks of its runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// `PUT /v1/sandboxes/{id}?wait=` with the spec in this desired state.
    Spec(DesiredState),
    /// `POST /v1/sandboxes/{id}/backup` (the container stays).
    Backup,
    /// A backup, then `DELETE /v1/sandboxes/{id}`.
    Archive,
    /// `DELETE /v1/sandboxes/{id}` (when the sandbox has a runner); its backups go afterwards.
    Destroy,
}

/// One action, described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Description {
    /// The desired state it sets (`None`: unchanged).
    pub desired: Option<SandboxDesiredState>,
    /// The state shown while it is in flight (`None`: unchanged).
    pub transitional: Option<SandboxState>,
    pub push: Push,
    /// Whether it begins a new spec generation (every action but a backup, which sends none).
    pub bumps_generation: bool,
}

/// The table of actions.
pub fn describe(action: SandboxAction) -> Description {
    use SandboxAction as A;
    let (desired, transitional, push) = match action {
        A::Create => (
            Some(SandboxDesiredState::Started),
            Some(SandboxState::Creating),
            Push::Spec(DesiredState::Started),
        ),
        A::Start => (
            Some(SandboxDesiredState::Started),
            Some(SandboxState::Starting),
            Push::Spec(DesiredState::Started),
        ),
        A::Restore => (
            Some(SandboxDesiredState::Started),
            Some(SandboxState::Restoring),
            Push::Spec(DesiredState::Started),
        ),
        A::Stop => (
            Some(SandboxDesiredState::Stopped),
            Some(SandboxState::Stopping),
            Push::Spec(DesiredState::Stopped),
        ),
        A::Archive => (
            Some(SandboxDesiredState::Archived),
            Some(SandboxState::Archiving),
            Push::Archive,
        ),
        A::Backup => (None, None, Push::Backup),
        // The state stays `started` while the new policy is applied.
        A::Network => (
            Some(SandboxDesiredState::Started),
            Some(SandboxState::Started),
            Push::Spec(DesiredState::Started),
        ),
        A::Destroy => (
            Some(SandboxDesiredState::Destroyed),
            Some(SandboxState::Destroying),
            Push::Destroy,
        ),
    };
    Description {
        desired,
        transitional,
        push,
        bumps_generation: action != A::Backup,
    }
}

/// Whether the action sends a spec (so an agent's state report of its generation settles it).
pub fn pushes_spec(action: SandboxAction) -> bool {
    matches!(describe(action).push, Push::Spec(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_described_consistently() {
        for a in SandboxAction::ALL {
            let d = describe(*a);
            assert_eq!(d.desired.is_some(), d.transitional.is_some(), "{a}");
            assert_eq!(d.bumps_generation, d.desired.is_some(), "{a}");
            if let Push::Spec(want) = d.push {
                let desired = d.desired.map(|s| s.as_str());
                let want = match want {
                    DesiredState::Started => "started",
                    DesiredState::Stopped => "stopped",
                };
                assert_eq!(desired, Some(want), "{a}");
            }
        }
        assert!(pushes_spec(SandboxAction::Restore));
        assert!(!pushes_spec(SandboxAction::Archive));
    }
}
