//! From a manifest and resolved variables to a running [`App`]: the engine, the compile cache,
//! one linked `InstancePre` per component, the route table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::app::App;
use crate::body_limit::BodyLimit;
use crate::engine::{self, CacheOutcome, CompileCache, EngineSettings};
use crate::error::Error;
use crate::manifest::{ComponentDef, Manifest};
use crate::outbound::AllowList;
use crate::routes::Router;
use crate::runtime::{self, ComponentSpec, HostState, InstanceLimits, PreparedComponent};
use crate::variables::AppVariables;

/// How to run the components.
#[derive(Debug, Clone)]
pub struct HostSettings {
    pub limits: InstanceLimits,
    /// Component instances alive at once (size of the pooling allocator).
    pub max_instances: u32,
    /// Where compiled components are kept between runs.
    pub cache_dir: PathBuf,
}

/// Compiles (or loads from the cache) and links every component of `manifest`, and builds the
/// application that serves them. The epoch ticker runs for as long as the app lives.
pub async fn load(
    manifest: &Manifest,
    variables: &AppVariables,
    settings: &HostSettings,
) -> Result<Arc<App>, Error> {
    let engine = engine::build_engine(EngineSettings {
        max_memory_bytes: settings.limits.max_memory_bytes,
        max_instances: settings.max_instances,
    })?;
    engine::start_epoch_ticker(&engine);
    let cache = CompileCache::new(settings.cache_dir.clone(), &engine)?;
    let prepared = {
        let (manifest, variables, engine) = (manifest.clone(), variables.clone(), engine.clone());
        tokio::task::spawn_blocking(move || prepare_all(&manifest, &variables, &engine, &cache))
            .await
            .map_err(|_| Error::Panicked)??
    };
    let router = Router::new(&manifest.http_triggers)?;
    Ok(App::new(&engine, router, prepared, settings.limits))
}

fn prepare_all(
    manifest: &Manifest,
    variables: &AppVariables,
    engine: &Engine,
    cache: &CompileCache,
) -> Result<Vec<PreparedComponent>, Error> {
    let linker = runtime::build_linker(engine)?;
    manifest
        .components
        .values()
        .map(|c| prepare(c, variables, engine, cache, &linker))
        .collect()
}

fn prepare(
    c: &ComponentDef,
    variables: &AppVariables,
    engine: &Engine,
    cache: &CompileCache,
    linker: &Linker<HostState>,
) -> Result<PreparedComponent, Error> {
    let started = Instant::now();
    let (component, outcome) = cache.load(engine, &c.source)?;
    let spec = spec(c, variables, component)?;
    let body_limit = spec.body_limit;
    let p = PreparedComponent::new(linker, spec)?;
    tracing::info!(
        component = %c.id,
        source = %c.source.display(),
        cache_hit = outcome == CacheOutcome::Hit,
        wasi_http = if p.is_p3() { "0.3" } else { "0.2" },
        max_request_body_bytes = body_limit.max_bytes(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "component ready"
    );
    Ok(p)
}

/// The per-component inputs: expanded outbound hosts, variables, environment, body limit.
fn spec(
    c: &ComponentDef,
    variables: &AppVariables,
    component: wasmtime::component::Component,
) -> Result<ComponentSpec, Error> {
    let hosts = c
        .allowed_outbound_hosts
        .iter()
        .map(|h| variables.expand(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::HostTemplate {
            component: c.id.clone(),
            source,
        })?;
    let allow = AllowList::parse(&hosts).map_err(|source| Error::AllowedHost {
        component: c.id.clone(),
        source,
    })?;
    let values =
        variables
            .component_values(&c.variables)
            .map_err(|source| Error::ComponentVariables {
                component: c.id.clone(),
                source,
            })?;
    let body_limit = BodyLimit::from_variables(&values).map_err(|source| Error::BodyLimit {
        component: c.id.clone(),
        source,
    })?;
    Ok(ComponentSpec {
        id: c.id.clone(),
        component,
        env: c
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        variables: values,
        allow,
        body_limit,
    })
}
