//! The spec a sandbox's runner gets.

use cove_runner_api::{DesiredState, EgressPolicy, NetworkPolicy, Resources, SandboxSpec};
use cove_store::sandboxes::{SandboxRecord, Transition};

/// The spec of `rec` for transition `t`: its container's image (the snapshot, or the backup it
/// was restored from), `t`'s generation, `desired`. User labels are a control-plane concept (they
/// may change at any time, the agent's container labels may not) and are not sent.
pub fn spec_of(rec: &SandboxRecord, t: &Transition, desired: DesiredState) -> SandboxSpec {
    let image = rec.container_image.as_deref().unwrap_or(&rec.snapshot);
    let mut s = SandboxSpec::new(image);
    s.generation = t.generation;
    s.org_id = Some(rec.org_id.to_string());
    s.os_user = Some(rec.user.clone());
    s.desired_state = desired;
    s.resources = Resources {
        cpu: Some(rec.cpu as f64),
        memory_mib: u64::try_from(rec.memory).ok().map(|m| m * 1024),
        disk_gib: u64::try_from(rec.disk).ok(),
        pids: None,
    };
    s.env = rec.env.clone();
    s.volumes = rec
        .volumes
        .iter()
        .map(|v| cove_runner_api::VolumeMount {
            volume_id: v.volume_id.to_string(),
            mount_path: v.mount_path.clone(),
            subpath: v.subpath.clone(),
            read_only: false,
        })
        .collect();
    // The container's network is fixed at its creation; a block-all set later is a rule.
    let no_network = rec.has_no_network();
    s.network = if no_network {
        NetworkPolicy::BlockAll
    } else {
        NetworkPolicy::Allow
    };
    s.egress = EgressPolicy {
        block_all: rec.network_block_all && !no_network,
        allow: cidrs(rec.network_allow_list.as_deref()),
        deny: cidrs(rec.network_deny_list.as_deref()),
        domain_allow: cidrs(rec.domain_allow_list.as_deref()),
        domain_deny: cidrs(rec.domain_deny_list.as_deref()),
    };
    s.stop_timeout_secs = (t.force && desired == DesiredState::Stopped).then_some(0);
    s
}

/// The entries of a comma-separated CIDR or domain list (validated by the sandbox routes).
fn cidrs(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_api_types::ids::{OrganizationId, SandboxId};
    use cove_store::sandboxes::SandboxAction;

    #[test]
    fn the_spec_carries_the_transition_and_the_container_image() {
        let mut rec = SandboxRecord::new(
            SandboxId::new_random(),
            OrganizationId::new_random(),
            "n",
            "img:1",
            "2026-01-01T00:00:00.000Z",
        );
        rec.memory = 2;
        let t = Transition::begin(SandboxAction::Stop, 7, "2026-01-01T00:00:00.000Z", true);
        let s = spec_of(&rec, &t, DesiredState::Stopped);
        assert_eq!((s.generation, s.snapshot.as_str()), (7, "img:1"));
        assert_eq!(
            (s.resources.memory_mib, s.stop_timeout_secs),
            (Some(2048), Some(0))
        );
        assert!(s.egress.is_open());
        rec.network_allow_list = Some("10.0.0.0/8, 192.0.2.1".into());
        rec.network_deny_list = Some("10.9.0.0/16".into());
        let s = spec_of(&rec, &t, DesiredState::Stopped);
        assert_eq!(s.egress.allow, ["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(s.egress.deny, ["10.9.0.0/16"]);
        rec.container_image = Some("cove-backup/abc:1".into());
        let s = spec_of(&rec, &t, DesiredState::Started);
        assert_eq!(
            (s.snapshot.as_str(), s.stop_timeout_secs),
            ("cove-backup/abc:1", None)
        );
    }

    #[test]
    fn block_all_is_no_network_at_create_and_a_rule_later() {
        let mut rec = SandboxRecord::new(
            SandboxId::new_random(),
            OrganizationId::new_random(),
            "n",
            "img:1",
            "2026-01-01T00:00:00.000Z",
        );
        let t = Transition::begin(SandboxAction::Network, 3, "2026-01-01T00:00:00.000Z", false);
        // A row written before `networkNone`: block-all meant no network.
        rec.network_block_all = true;
        let s = spec_of(&rec, &t, DesiredState::Started);
        assert_eq!(
            (s.network, s.egress.block_all),
            (NetworkPolicy::BlockAll, false)
        );
        // Created with a network, blocked later: the network stays, the rules block.
        rec.network_none = Some(false);
        let s = spec_of(&rec, &t, DesiredState::Started);
        assert_eq!(
            (s.network, s.egress.block_all),
            (NetworkPolicy::Allow, true)
        );
        rec.network_block_all = false;
        let s = spec_of(&rec, &t, DesiredState::Started);
        assert!(s.network == NetworkPolicy::Allow && s.egress.is_open());
    }
}
