//! Per-component runtime: the store data, the linker, and the `wasi:http` handler state that
//! creates one instance per request (or reuses it `--instance-reuse` times).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::body_limit::BodyLimit;
use crate::guest_log::GuestLog;
use crate::outbound::{AllowList, InternalDispatch, OutboundHooks};
use crate::spin::{self, SpinView};

/// Most requests one WASIp3 instance serves at the same time when instances are reused.
const MAX_CONCURRENT_PER_INSTANCE: usize = 16;
/// How long a reused instance may sit idle before it is dropped.
const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the WASI/Spin linker")]
    Linker(#[source] wasmtime::Error),
    #[error("component {component:?} cannot be linked (does it import an interface cove lacks?)")]
    Link {
        component: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error(
        "component {component:?} exports neither wasi:http/handler@0.3 nor wasi:http/incoming-handler@0.2"
    )]
    NotHttp {
        component: String,
        #[source]
        source: wasmtime::Error,
    },
}

/// Limits applied to every instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    pub request_timeout: Duration,
    pub max_memory_bytes: usize,
    /// Requests one instance serves before it is dropped (1 = a fresh instance per request).
    pub instance_reuse: usize,
}

/// The data of one `Store`: one component instance.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    limits: StoreLimits,
    variables: Arc<HashMap<String, String>>,
    /// Guest code running past this instant is interrupted (checked every epoch tick).
    deadline: Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl HostState {
    fn spin(&mut self) -> SpinView<'_> {
        SpinView {
            variables: &self.variables,
        }
    }
}

/// The linker shared by all components: WASIp2 + WASIp3, wasi:http 0.2 + 0.3, Spin variables.
pub fn build_linker(engine: &Engine) -> Result<Linker<HostState>, RuntimeError> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(RuntimeError::Linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(RuntimeError::Linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(RuntimeError::Linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(RuntimeError::Linker)?;
    spin::add_to_linker(&mut linker, HostState::spin).map_err(RuntimeError::Linker)?;
    Ok(linker)
}

/// Everything needed to instantiate one component, prepared once at start.
pub struct ComponentRuntime {
    id: Arc<str>,
    engine: Engine,
    pre: ProxyPre<HostState>,
    is_p3: bool,
    env: Vec<(String, String)>,
    variables: Arc<HashMap<String, String>>,
    allow: Arc<AllowList>,
    internal: Weak<dyn InternalDispatch>,
    limits: InstanceLimits,
    log: GuestLog,
    instantiations: AtomicU64,
}

/// The per-component inputs of [`ComponentRuntime::new`].
pub struct ComponentSpec {
    pub id: String,
    pub component: Component,
    pub env: Vec<(String, String)>,
    pub variables: HashMap<String, String>,
    pub allow: AllowList,
    pub body_limit: BodyLimit,
}

/// A component linked and ready to instantiate, before the app exists.
pub struct PreparedComponent {
    spec: ComponentSpec,
    pre: ProxyPre<HostState>,
    is_p3: bool,
}

impl PreparedComponent {
    /// Links the component (`InstancePre`, done once) and detects its wasi:http flavour.
    pub fn new(linker: &Linker<HostState>, spec: ComponentSpec) -> Result<Self, RuntimeError> {
        let pre = linker
            .instantiate_pre(&spec.component)
            .map_err(|source| RuntimeError::Link {
                component: spec.id.clone(),
                source,
            })?;
        let (pre, is_p3) = match wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
            Ok(p3) => (ProxyPre::P3(p3), true),
            Err(_) => {
                let p2 =
                    wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(|source| {
                        RuntimeError::NotHttp {
                            component: spec.id.clone(),
                            source,
                        }
                    })?;
                (ProxyPre::P2(p2), false)
            }
        };
        Ok(Self { spec, pre, is_p3 })
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn is_p3(&self) -> bool {
        self.is_p3
    }

    pub fn body_limit(&self) -> BodyLimit {
        self.spec.body_limit
    }

    pub fn into_runtime(
        self,
        engine: &Engine,
        internal: Weak<dyn InternalDispatch>,
        limits: InstanceLimits,
    ) -> ComponentRuntime {
        let id: Arc<str> = self.spec.id.into();
        ComponentRuntime {
            log: GuestLog::new(&id),
            id,
            engine: engine.clone(),
            pre: self.pre,
            is_p3: self.is_p3,
            env: self.spec.env,
            variables: Arc::new(self.spec.variables),
            allow: Arc::new(self.spec.allow),
            internal,
            limits,
            instantiations: AtomicU64::new(0),
        }
    }
}

impl ComponentRuntime {
    /// How many instances of this component were created so far.
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }

    fn new_store(&self) -> Store<HostState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.env)
            .stdout(self.log.clone())
            .stderr(self.log.clone());
        let state = HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks::new(self.id.clone(), self.allow.clone(), self.internal.clone()),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory_bytes)
                .build(),
            variables: self.variables.clone(),
            deadline: Instant::now() + self.limits.request_timeout,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Let other tasks (and the request expiration) run between ticks.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    fn concurrency(&self) -> usize {
        if self.is_p3 && self.limits.instance_reuse > 1 {
            MAX_CONCURRENT_PER_INSTANCE.min(self.limits.instance_reuse)
        } else {
            1
        }
    }
}

impl HandlerState for ComponentRuntime {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        let mut store = self.new_store();
        let proxy = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy,
            view: <HostState as WasiHttpView>::http,
            expiration: Expiration {
                sleep: Box::pin(tokio::time::sleep(IDLE_INSTANCE_TIMEOUT)),
                request_timeout: self.limits.request_timeout,
            },
            state: Worker {
                component: self.id.clone(),
                reuse: self.limits.instance_reuse.max(1),
                concurrent: self.concurrency(),
                request_timeout: self.limits.request_timeout,
            },
        })
    }
}

/// Decides when an instance is dropped: idle too long, or busy past the request timeout.
/// (The epoch callback interrupts a busy guest; this is the second line of defence.)
pub struct Expiration {
    sleep: Pin<Box<tokio::time::Sleep>>,
    request_timeout: Duration,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let limit = match status {
            WorkerStatus::Idle => IDLE_INSTANCE_TIMEOUT,
            WorkerStatus::Requests | WorkerStatus::PostReturn => {
                self.request_timeout + Duration::from_secs(1)
            }
        };
        let deadline = tokio::time::Instant::from_std(start + limit);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// Per-instance request accounting.
pub struct Worker {
    component: Arc<str>,
    reuse: usize,
    concurrent: usize,
    request_timeout: Duration,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = u64;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse {
            ShouldAccept::Never
        } else if concurrent >= self.concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        request_id: u64,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        store.data_mut().deadline = Instant::now() + self.request_timeout;
        tracing::trace!(component = %self.component, request_id, "request accepted by instance");
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::debug!(component = %self.component, error = %format!("{error:?}"), "instance ended with an error");
        }
        drop(store);
    }
}
