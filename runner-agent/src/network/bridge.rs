//! The Docker side of the sandbox network: creating and checking it, the subnets of every local
//! network (destinations sandboxes may not reach), and moving this runner's containers onto it.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions};

use super::{NetworkError, NetworkSettings};

const ICC: &str = "com.docker.network.bridge.enable_icc";
const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Label marking the networks the agent made.
const MANAGED_LABEL: &str = "cove.network";

/// Facts about the sandbox network.
#[derive(Debug, Clone)]
pub struct NetworkFacts {
    pub id: String,
    pub subnets: Vec<String>,
    /// The bridge's own IPv4 address (where the egress proxy listens).
    pub gateway: Option<std::net::Ipv4Addr>,
}

fn engine(op: &'static str) -> impl Fn(BollardError) -> NetworkError {
    move |e| NetworkError::Engine {
        op,
        message: e.to_string(),
    }
}

fn status_is(e: &BollardError, code: u16) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// The network of `settings`, created when missing; refuses one whose settings would not isolate.
pub async fn ensure(
    docker: &Docker,
    settings: &NetworkSettings,
) -> Result<NetworkFacts, NetworkError> {
    let net = match docker.inspect_network(&settings.name, None).await {
        Ok(n) => n,
        Err(e) if status_is(&e, 404) => {
            create(docker, settings).await?;
            docker
                .inspect_network(&settings.name, None)
                .await
                .map_err(engine("inspect the sandbox network"))?
        }
        Err(e) => return Err(engine("inspect the sandbox network")(e)),
    };
    let options = net.options.unwrap_or_default();
    let unusable = |why: String| NetworkError::Unusable {
        name: settings.name.clone(),
        why,
    };
    if net.driver.as_deref() != Some("bridge") {
        return Err(unusable(format!("driver {:?}, want bridge", net.driver)));
    }
    check_options(&options, &settings.bridge).map_err(unusable)?;
    if net.internal == Some(true) {
        return Err(unusable("it is internal (no egress)".into()));
    }
    let config = net.ipam.and_then(|i| i.config).unwrap_or_default();
    let gateway = config
        .iter()
        .filter_map(|c| c.gateway.as_deref())
        .find_map(|g| g.parse().ok());
    let subnets = config.into_iter().filter_map(|c| c.subnet).collect();
    Ok(NetworkFacts {
        id: net.id.unwrap_or_default(),
        subnets,
        gateway,
    })
}

/// ICC off and the expected bridge name.
fn check_options(options: &HashMap<String, String>, bridge: &str) -> Result<(), String> {
    if options.get(ICC).map(String::as_str) != Some("false") {
        return Err(format!("{ICC} is not false"));
    }
    match options.get(BRIDGE_NAME) {
        Some(b) if b == bridge => Ok(()),
        other => Err(format!("bridge name {other:?}, want {bridge:?}")),
    }
}

async fn create(docker: &Docker, settings: &NetworkSettings) -> Result<(), NetworkError> {
    let req = NetworkCreateRequest {
        name: settings.name.clone(),
        driver: Some("bridge".into()),
        internal: Some(false),
        enable_ipv6: Some(false),
        options: Some(HashMap::from([
            (ICC.to_owned(), "false".to_owned()),
            (BRIDGE_NAME.to_owned(), settings.bridge.clone()),
        ])),
        labels: Some(HashMap::from([(
            MANAGED_LABEL.to_owned(),
            "true".to_owned(),
        )])),
        ..Default::default()
    };
    match docker.create_network(req).await {
        Ok(_) => {
            tracing::info!(network = %settings.name, bridge = %settings.bridge, "created the sandbox network");
            Ok(())
        }
        // Made meanwhile by another agent of this host.
        Err(e) if status_is(&e, 409) => Ok(()),
        Err(e) => Err(engine("create the sandbox network")(e)),
    }
}

/// IPv4 subnets of every local Docker network.
pub async fn local_subnets(docker: &Docker) -> Result<Vec<ipnet::Ipv4Net>, NetworkError> {
    let nets = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(engine("list networks"))?;
    Ok(nets
        .into_iter()
        .filter_map(|n| n.ipam.and_then(|i| i.config))
        .flatten()
        .filter_map(|c| c.subnet)
        .filter_map(|s| s.parse::<ipnet::Ipv4Net>().ok())
        .collect())
}

/// Moves this runner's containers that are on another network (made before the agent had a
/// sandbox network) onto it; containers with network `none` stay as they are.
pub async fn migrate(docker: &Docker, network: &str, runner_id: &str) -> Result<(), NetworkError> {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={runner_id}", crate::reconciler::RUNNER_LABEL)],
    )]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(engine("list containers"))?;
    for c in list {
        let mode = c
            .host_config
            .and_then(|h| h.network_mode)
            .unwrap_or_default();
        let nets: Vec<String> = c
            .network_settings
            .and_then(|n| n.networks)
            .map(|m| m.into_keys().collect())
            .unwrap_or_default();
        let (Some(id), false) = (c.id, mode == "none" || nets.iter().any(|n| n == network)) else {
            continue;
        };
        let connect = docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: id.clone(),
                    endpoint_config: None,
                },
            )
            .await;
        match connect {
            Ok(()) => {}
            // Removed since the listing (a destroy racing the agent's start): nothing to move.
            Err(e) if status_is(&e, 404) => continue,
            Err(e) => return Err(engine("connect a container to the sandbox network")(e)),
        }
        for old in &nets {
            let req = NetworkDisconnectRequest {
                container: id.clone(),
                force: Some(true),
            };
            match docker.disconnect_network(old, req).await {
                Ok(()) => {}
                Err(e) if status_is(&e, 404) => {}
                Err(e) => return Err(engine("disconnect a container from its old network")(e)),
            }
        }
        tracing::info!(container = %id, from = ?nets, to = network, "moved a sandbox onto the sandbox network");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_must_isolate() {
        let good = HashMap::from([
            (ICC.to_owned(), "false".to_owned()),
            (BRIDGE_NAME.to_owned(), "cove0".to_owned()),
        ]);
        assert!(check_options(&good, "cove0").is_ok());
        assert!(check_options(&good, "cove1").is_err());
        let mut icc = good.clone();
        icc.insert(ICC.into(), "true".into());
        assert!(check_options(&icc, "cove0").is_err());
        let mut unnamed = good;
        unnamed.remove(BRIDGE_NAME);
        assert!(check_options(&unnamed, "cove0").is_err());
    }
}
