//! The Wasmtime engine (pooling allocator, epoch interruption) and the on-disk cache of
//! compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; request deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure the wasm engine")]
    Config(#[source] wasmtime::Error),
    #[error("cannot read component {path}")]
    ReadWasm {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot compile component {path}")]
    Compile {
        path: PathBuf,
        #[source]
        source: wasmtime::Error,
    },
    #[error("cannot create compile cache directory {path}")]
    CacheDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Engine settings derived from the command line.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Largest linear memory one instance may have.
    pub max_memory_bytes: usize,
    /// Component instances that may be alive at once (pool size).
    pub max_instances: u32,
}

/// Dirty linear-memory bytes an instance slot keeps mapped when it is freed: they are reset
/// in place (`memcpy` from the memory image / zeroing) instead of `madvise`d away, so the next
/// instance in the slot takes no page faults on them and the process no TLB-shootdown IPIs.
/// Only used with `PAGEMAP_SCAN` (Linux >= 6.7), which finds the pages that were actually
/// written; without it Wasmtime would reset the whole prefix on every free.
const KEEP_RESIDENT_BYTES: usize = 32 << 20;
/// The same for tables (funcref tables of a Rust component are a few hundred KiB at most).
const TABLE_KEEP_RESIDENT_BYTES: usize = 1 << 20;

pub fn build_engine(settings: EngineSettings) -> Result<Engine, EngineError> {
    match Engine::new(&engine_config(settings, true)) {
        Ok(engine) => Ok(engine),
        Err(error) => {
            tracing::debug!(error = %format!("{error:#}"), "PAGEMAP_SCAN unavailable: freed instance memory is decommitted");
            Engine::new(&engine_config(settings, false)).map_err(EngineError::Config)
        }
    }
}

fn engine_config(settings: EngineSettings, keep_resident: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    if std::env::var_os("COVE_PERFMAP").is_some_and(|v| v == "1") {
        // Names JIT-compiled guest functions for `perf` (writes /tmp/perf-<pid>.map).
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }

    let mut pool = PoolingAllocationConfig::default();
    let n = settings.max_instances;
    pool.total_component_instances(n);
    // Components built by Rust for wasm32-wasip2 carry a few core instances (the program,
    // plus small shim/adapter modules), a single main memory and a few tables.
    pool.total_core_instances(n.saturating_mul(4));
    pool.total_memories(n.saturating_mul(2));
    pool.total_tables(n.saturating_mul(4));
    pool.total_stacks(n);
    pool.max_memory_size(settings.max_memory_bytes);
    pool.max_memories_per_component(4);
    pool.max_tables_per_component(8);
    pool.max_core_instances_per_component(16);
    if keep_resident {
        // `Yes`, not `Auto`: without the ioctl the engine fails to build and we fall back.
        pool.pagemap_scan(wasmtime::Enabled::Yes);
        pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
        pool.table_keep_resident(TABLE_KEEP_RESIDENT_BYTES);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances the engine epoch every [`EPOCH_TICK`] for as long as the engine lives.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("cove-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the epoch ticker; request timeouts will not fire");
    }
}

/// Whether a component came from the compile cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

/// Compiled components on disk, keyed by the sha256 of the wasm bytes and a hash of the
/// engine configuration (so a different engine never loads an incompatible artifact).
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into sha256 so the key is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Result<Self, EngineError> {
        std::fs::create_dir_all(&dir).map_err(|source| EngineError::CacheDir {
            path: dir.clone(),
            source,
        })?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self { dir, engine_key })
    }

    fn artifact_path(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// Loads `path`, from the cache when possible, compiling and storing it otherwise.
    pub fn load(
        &self,
        engine: &Engine,
        path: &Path,
    ) -> Result<(Component, CacheOutcome), EngineError> {
        let started = Instant::now();
        let wasm = std::fs::read(path).map_err(|source| EngineError::ReadWasm {
            path: path.to_owned(),
            source,
        })?;
        let artifact = self.artifact_path(&wasm);
        if artifact.exists() {
            match deserialize(engine, &artifact) {
                Ok(component) => {
                    tracing::debug!(artifact = %artifact.display(), elapsed_ms = started.elapsed().as_millis() as u64, "loaded precompiled component");
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(error) => {
                    tracing::warn!(artifact = %artifact.display(), error = %format!("{error:#}"), "ignoring unusable compile cache entry");
                }
            }
        }
        let compile = |source| EngineError::Compile {
            path: path.to_owned(),
            source,
        };
        let bytes = engine.precompile_component(&wasm).map_err(compile)?;
        if let Err(error) = write_atomically(&artifact, &bytes) {
            tracing::warn!(artifact = %artifact.display(), %error, "cannot write compile cache entry");
        }
        let component = deserialize_bytes(engine, &bytes).map_err(compile)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );
        Ok((component, CacheOutcome::Miss))
    }
}

/// Loads a precompiled artifact.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `CompileCache::load` from `Engine::precompile_component`
    // of an engine whose configuration hash is part of its name; Wasmtime additionally checks
    // the header for compatibility. The cache directory belongs to the operator running cove
    // (its data dir by default; `--compile-cache` may share one between processes).
    unsafe { Component::deserialize_file(engine, artifact) }
}

/// Loads an artifact just produced by `Engine::precompile_component` of `engine`.
#[allow(unsafe_code)]
fn deserialize_bytes(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `bytes` come straight from `engine.precompile_component` in this process.
    unsafe { Component::deserialize(engine, bytes) }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_is_stable_for_one_engine_config() {
        let settings = EngineSettings {
            max_memory_bytes: 16 << 20,
            max_instances: 4,
        };
        let dir = tempfile::tempdir().unwrap();
        let a = CompileCache::new(dir.path().into(), &build_engine(settings).unwrap()).unwrap();
        let b = CompileCache::new(dir.path().into(), &build_engine(settings).unwrap()).unwrap();
        assert_eq!(a.engine_key, b.engine_key);
        assert_ne!(a.artifact_path(b"x"), a.artifact_path(b"y"));
    }
}
