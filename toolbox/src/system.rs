//! `GET /system/metrics`, `GET /port` and `GET /port/{port}/in-use`: the sandbox seen from inside.
//!
//! Metrics come from the sandbox's own cgroup, so they describe the container, not the host:
//! * CPU: the limit from cgroup v2 `cpu.max` (`quota period`; `max` = no limit, then the CPUs
//!   the daemon may run on) or v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`; `cpuCount` is that
//!   limit rounded up (at least 1). `cpuUsedPct` is the growth of the cgroup's CPU time (v2
//!   `cpu.stat` `usage_usec`, v1 `cpuacct.usage`, else the busy jiffies of `/proc/stat`) over
//!   the wall time between two samples, as a percentage of the limit, clamped to 0..=100. The
//!   window is the time since the previous call ([`Sampler`]); a call with no previous sample,
//!   or one older than [`STALE_AFTER`], samples for [`FIRST_WINDOW`] first, so every answer
//!   is a real measurement of the last moments (never the "0 until the first sample" placeholder).
//! * memory: `memTotal` is the cgroup limit (`memory.max`, v1 `memory.limit_in_bytes`) capped at
//!   `/proc/meminfo` `MemTotal`; `memUsed` is the charged memory (`memory.current`, v1
//!   `memory.usage_in_bytes`) minus the inactive page cache (`inactive_file`), the working set
//!   `docker stats` shows; `memCache` is the page cache (`file`, v1 `cache`). Without a memory
//!   cgroup: `MemTotal - MemAvailable` and `Cached` of `/proc/meminfo`.
//! * disk: `statvfs` of the work dir's filesystem: `diskTotal` = blocks, `diskUsed` = blocks -
//!   free blocks, `diskFree` = blocks available to unprivileged users (all × fragment size).
//!
//! Ports: the TCP sockets in state LISTEN of `/proc/net/tcp` and `/proc/net/tcp6` (the sandbox's
//! network namespace), any local address.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use cove_api_types::toolbox::system::{IsPortInUseResponse, PortList, SystemMetrics};

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::server::AppState;

type St = State<Arc<AppState>>;

/// The sampling window of a call without a recent previous sample.
pub const FIRST_WINDOW: Duration = Duration::from_millis(250);
/// A previous sample older than this is not used: its average would say little about "now".
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// A previous sample younger than this gives too short a window (timer and accounting
/// granularity): the call answers the last measured percentage instead.
pub const MIN_WINDOW: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------- parsers (pure, tested)

/// cgroup v2 `cpu.max` (`"200000 100000"`, `"max 100000"`): the CPU limit in CPUs, `None` when
/// unlimited or unreadable.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: f64 = it.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    let quota: f64 = quota.parse().ok()?;
    (quota > 0.0).then_some(quota / period)
}

/// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`: the limit in CPUs (`-1` = none).
pub fn parse_cfs_quota(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// The value of `key` in a `key value` per line file (`cpu.stat`, `memory.stat`).
pub fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// A byte limit (`memory.max`, `memory.limit_in_bytes`): `None` for `max` or a v1 "unlimited"
/// (a number near `i64::MAX`, page-rounded).
pub fn parse_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < (1 << 62)).then_some(v)
}

/// A `/proc/meminfo` line in bytes (`MemTotal:  24683784 kB`).
pub fn meminfo_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let mut it = rest.split_whitespace();
        let v: u64 = it.next()?.parse().ok()?;
        Some(match it.next() {
            Some("kB") => v.saturating_mul(1024),
            _ => v,
        })
    })
}

/// `/proc/stat`'s first line: the busy time of all CPUs in microseconds (jiffies of 10 ms, the
/// `USER_HZ` of every Linux ABI the daemon is built for), idle and iowait left out.
pub fn proc_stat_busy_usec(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    Some(busy.saturating_mul(10_000))
}

/// The cgroup path of `controller` in `/proc/self/cgroup` (`""` is v2's unified line).
pub fn cgroup_path(proc_self_cgroup: &str, controller: &str) -> Option<String> {
    proc_self_cgroup.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let _id = it.next()?;
        let controllers = it.next()?;
        let path = it.next()?;
        let hit = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        hit.then(|| path.to_owned())
    })
}

/// The TCP ports in state LISTEN (`0A`) of a `/proc/net/tcp{,6}` table.
pub fn listening_ports(table: &str) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(|l| {
        let mut it = l.split_whitespace();
        let local = it.nth(1)?;
        let state = it.nth(1)?;
        if state != "0A" {
            return None;
        }
        let (_, port) = local.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    })
}

// ---------------------------------------------------------------- reading the cgroup

/// Which cgroup files hold the sandbox's figures.
#[derive(Debug, Clone)]
enum Cgroup {
    /// The unified hierarchy's directory of the daemon's cgroup.
    V2(PathBuf),
    /// v1: the `cpu`, `cpuacct` and `memory` controllers' directories (each may be missing).
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
    },
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The directory of the daemon's cgroup under `mount`: `mount/<path>` when it exists (no cgroup
/// namespace), else `mount` itself (in a cgroup namespace the path is `/`, or the daemon's cgroup
/// is not visible and the container's root is its own).
fn controller_dir(mount: &Path, path: Option<&str>, probe: &str) -> Option<PathBuf> {
    let nested = path.map(|p| mount.join(p.trim_start_matches('/')));
    nested
        .into_iter()
        .chain(std::iter::once(mount.to_path_buf()))
        .find(|d| d.join(probe).exists())
}

impl Cgroup {
    fn detect() -> Self {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let root = Path::new(CGROUP_ROOT);
        if root.join("cgroup.controllers").exists()
            && let Some(dir) =
                controller_dir(root, cgroup_path(&own, "").as_deref(), "memory.current")
                    .or_else(|| controller_dir(root, cgroup_path(&own, "").as_deref(), "cpu.stat"))
        {
            return Self::V2(dir);
        }
        let v1 = |name: &str, probe: &str| {
            controller_dir(&root.join(name), cgroup_path(&own, name).as_deref(), probe)
        };
        Self::V1 {
            cpu: v1("cpu", "cpu.cfs_quota_us"),
            cpuacct: v1("cpuacct", "cpuacct.usage"),
            memory: v1("memory", "memory.usage_in_bytes"),
        }
    }

    fn read(dir: Option<&Path>, file: &str) -> Option<String> {
        std::fs::read_to_string(dir?.join(file)).ok()
    }

    /// The CPU limit in CPUs, `None` when unlimited.
    fn cpu_limit(&self) -> Option<f64> {
        match self {
            Self::V2(d) => parse_cpu_max(&Self::read(Some(d), "cpu.max")?),
            Self::V1 { cpu, .. } => parse_cfs_quota(
                &Self::read(cpu.as_deref(), "cpu.cfs_quota_us")?,
                &Self::read(cpu.as_deref(), "cpu.cfs_period_us")?,
            ),
        }
    }

    /// CPU time used so far, in microseconds.
    fn cpu_usage_usec(&self) -> Option<u64> {
        let cg = match self {
            Self::V2(d) => stat_value(&Self::read(Some(d), "cpu.stat")?, "usage_usec"),
            Self::V1 { cpuacct, .. } => Self::read(cpuacct.as_deref(), "cpuacct.usage")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(|ns| ns / 1000),
        };
        cg.or_else(|| proc_stat_busy_usec(&std::fs::read_to_string("/proc/stat").ok()?))
    }

    /// `(limit, charged, inactive page cache, page cache)` in bytes, each when known.
    fn memory(&self) -> (Option<u64>, Option<u64>, Option<u64>, Option<u64>) {
        match self {
            Self::V2(d) => {
                let stat = Self::read(Some(d), "memory.stat").unwrap_or_default();
                (
                    Self::read(Some(d), "memory.max").and_then(|s| parse_limit(&s)),
                    Self::read(Some(d), "memory.current").and_then(|s| s.trim().parse().ok()),
                    stat_value(&stat, "inactive_file"),
                    stat_value(&stat, "file"),
                )
            }
            Self::V1 { memory, .. } => {
                let dir = memory.as_deref();
                let stat = Self::read(dir, "memory.stat").unwrap_or_default();
                (
                    Self::read(dir, "memory.limit_in_bytes").and_then(|s| parse_limit(&s)),
                    Self::read(dir, "memory.usage_in_bytes").and_then(|s| s.trim().parse().ok()),
                    stat_value(&stat, "total_inactive_file")
                        .or_else(|| stat_value(&stat, "inactive_file")),
                    stat_value(&stat, "total_cache").or_else(|| stat_value(&stat, "cache")),
                )
            }
        }
    }
}

/// The CPUs the daemon may run on, at least 1 (std's count: the affinity mask, which follows
/// `cpuset`, and the cgroup quota rounded up).
fn online_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// The memory figures, `(total, used, cache)` in bytes.
fn memory_figures(cg: &Cgroup) -> (u64, u64, u64) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let host_total = meminfo_value(&meminfo, "MemTotal");
    let (limit, charged, inactive, cache) = cg.memory();
    let total = match (limit, host_total) {
        (Some(l), Some(h)) => l.min(h),
        (l, h) => l.or(h).unwrap_or(0),
    };
    match charged {
        Some(charged) => (
            total,
            charged.saturating_sub(inactive.unwrap_or(0)),
            cache.unwrap_or(0),
        ),
        None => {
            let available = meminfo_value(&meminfo, "MemAvailable").unwrap_or(0);
            (
                total,
                host_total.unwrap_or(0).saturating_sub(available),
                meminfo_value(&meminfo, "Cached").unwrap_or(0),
            )
        }
    }
}

/// `(total, used, free)` bytes of the filesystem holding `dir`.
fn disk_figures(dir: &Path) -> Result<(u64, u64, u64)> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| ToolboxError::Internal(format!("statvfs {}: {e}", dir.display())))?;
    let unit = st.f_frsize.max(1);
    let total = st.f_blocks.saturating_mul(unit);
    let used = st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(unit);
    let free = st.f_bavail.saturating_mul(unit);
    Ok((total, used, free))
}

// ---------------------------------------------------------------- the CPU sampler

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    usage_usec: u64,
}

#[derive(Debug, Default)]
struct SamplerState {
    last: Option<Sample>,
    /// The percentage the last complete window measured.
    last_pct: f64,
}

/// The previous CPU sample of `GET /system/metrics` (one `Sample`, so bounded), and where the
/// cgroup files are (found once).
#[derive(Debug, Default)]
pub struct Sampler {
    cgroup: std::sync::OnceLock<Cgroup>,
    state: tokio::sync::Mutex<SamplerState>,
}

/// The average use of `limit` CPUs between two samples, in percent, clamped to 0..=100.
pub fn cpu_percent(before: u64, after: u64, elapsed: Duration, limit: f64) -> f64 {
    let wall = elapsed.as_secs_f64() * 1e6 * limit;
    if wall <= 0.0 {
        return 0.0;
    }
    (after.saturating_sub(before) as f64 / wall * 100.0).clamp(0.0, 100.0)
}

impl Sampler {
    fn cgroup(&self) -> &Cgroup {
        self.cgroup.get_or_init(Cgroup::detect)
    }

    /// The CPU limit in CPUs (the online CPUs when unlimited, never more than them).
    fn cpu_limit(&self) -> f64 {
        let cpus = online_cpus();
        self.cgroup().cpu_limit().map_or(cpus, |l| l.min(cpus))
    }

    /// Measures the CPU use (see the module doc for the window).
    async fn cpu_used_pct(&self, limit: f64) -> f64 {
        let cg = self.cgroup().clone();
        let read = move || cg.cpu_usage_usec();
        // One sampler at a time: concurrent calls share the window instead of shrinking it.
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let fresh = state
            .last
            .filter(|s| now.duration_since(s.at) <= STALE_AFTER);
        let before = match fresh {
            Some(s) if now.duration_since(s.at) < MIN_WINDOW => return state.last_pct,
            Some(s) => s,
            None => {
                let Some(usage_usec) = read() else {
                    return 0.0;
                };
                let first = Sample {
                    at: Instant::now(),
                    usage_usec,
                };
                tokio::time::sleep(FIRST_WINDOW).await;
                first
            }
        };
        let Some(usage_usec) = read() else {
            return 0.0;
        };
        let after = Sample {
            at: Instant::now(),
            usage_usec,
        };
        let pct = cpu_percent(
            before.usage_usec,
            after.usage_usec,
            after.at.duration_since(before.at),
            limit,
        );
        state.last = Some(after);
        state.last_pct = pct;
        pct
    }

    /// One snapshot of the sandbox's figures; `dir` is on the filesystem reported as the disk.
    pub async fn snapshot(&self, dir: &Path) -> Result<SystemMetrics> {
        let limit = self.cpu_limit();
        let cpu_used_pct = self.cpu_used_pct(limit).await;
        let (mem_total, mem_used, mem_cache) = memory_figures(self.cgroup());
        let (disk_total, disk_used, disk_free) = disk_figures(dir)?;
        let now = time::OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        Ok(SystemMetrics {
            timestamp: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            timestamp_unix: now.unix_timestamp(),
            cpu_count: (limit.ceil() as u32).max(1),
            // Two decimals are all a percentage of a 250 ms window is worth.
            cpu_used_pct: (cpu_used_pct * 100.0).round() / 100.0,
            mem_used: if mem_total > 0 {
                mem_used.min(mem_total)
            } else {
                mem_used
            },
            mem_total,
            mem_cache,
            disk_used,
            disk_total,
            disk_free,
        })
    }
}

// ---------------------------------------------------------------- handlers

/// `GET /system/metrics`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/system/metrics",
    tag = "system",
    operation_id = "GetSystemMetrics",
    summary = "Get sandbox resource metrics",
    description = "Latest CPU/memory/disk usage snapshot of the sandbox, from its cgroup. \
        `cpuUsedPct` is the average CPU use as a percentage of the CPU limit since the previous \
        call (or over a 250 ms window when there is none younger than 30 s). Byte fields are \
        bytes; `timestamp` is RFC 3339 UTC.",
    responses((status = 200, description = "The snapshot", body = SystemMetrics), DaemonErrors)
))]
pub async fn metrics(State(st): St) -> Result<Json<SystemMetrics>> {
    let dir = st.paths.work_dir_real();
    Ok(Json(st.metrics.snapshot(&dir).await?))
}

/// The TCP ports something listens on in the sandbox, ascending, each once.
pub fn ports_in_use() -> Vec<u16> {
    let mut ports: Vec<u16> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| listening_ports(&t).collect::<Vec<_>>())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `GET /port`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/port",
    tag = "port",
    operation_id = "GetPorts",
    summary = "Get active ports",
    description = "The TCP ports something listens on in the sandbox (any address, IPv4 or \
        IPv6), ascending.",
    responses((status = 200, description = "The ports", body = PortList), DaemonErrors)
))]
pub async fn ports() -> Json<PortList> {
    Json(PortList {
        ports: ports_in_use(),
    })
}

/// `GET /port/{port}/in-use`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/port/{port}/in-use",
    tag = "port",
    operation_id = "IsPortInUse",
    summary = "Check if port is in use",
    description = "Whether something listens on TCP `port` in the sandbox. A port that is not \
        a number in 1..=65535 is 400.",
    params(("port" = u16, Path, description = "Port number")),
    responses((status = 200, description = "Whether it is in use", body = IsPortInUseResponse), DaemonErrors)
))]
pub async fn port_in_use(UrlPath(port): UrlPath<String>) -> Result<Json<IsPortInUseResponse>> {
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ToolboxError::BadRequest(format!("invalid port: {port}")))?;
    Ok(Json(IsPortInUseResponse {
        is_in_use: ports_in_use().contains(&port),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_is_a_limit_in_cpus() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("150000"), Some(1.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("abc 100000"), None);
        assert_eq!(parse_cpu_max("100 0"), None);
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs_quota("250000\n", "100000\n"), Some(2.5));
    }

    const CPU_STAT: &str = "usage_usec 11780728\nuser_usec 9000000\nsystem_usec 2780728\n\
        nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";

    const MEMORY_STAT: &str = "anon 104857600\nfile 52428800\nkernel 4096\n\
        active_file 20971520\ninactive_file 31457280\nshmem 0\n";

    #[test]
    fn stat_files_are_read_by_key() {
        assert_eq!(stat_value(CPU_STAT, "usage_usec"), Some(11_780_728));
        assert_eq!(stat_value(CPU_STAT, "system_usec"), Some(2_780_728));
        assert_eq!(stat_value(MEMORY_STAT, "file"), Some(52_428_800));
        // A key is a whole word: `file` does not match `inactive_file`.
        assert_eq!(stat_value(MEMORY_STAT, "inactive_file"), Some(31_457_280));
        assert_eq!(stat_value(MEMORY_STAT, "nope"), None);
        assert_eq!(stat_value("usage_usec x\n", "usage_usec"), None);
    }

    #[test]
    fn limits_unlimited_is_none() {
        assert_eq!(parse_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_limit("max\n"), None);
        // cgroup v1's "no limit", page-rounded i64::MAX.
        assert_eq!(parse_limit("9223372036854771712\n"), None);
    }

    const MEMINFO: &str = "MemTotal:       24683784 kB\nMemFree:        20000000 kB\n\
        MemAvailable:   23819132 kB\nBuffers:          100000 kB\nCached:           861404 kB\n";

    #[test]
    fn meminfo_is_bytes() {
        assert_eq!(meminfo_value(MEMINFO, "MemTotal"), Some(24_683_784 * 1024));
        assert_eq!(meminfo_value(MEMINFO, "Cached"), Some(861_404 * 1024));
        // `Mem` alone is no key.
        assert_eq!(meminfo_value(MEMINFO, "Mem"), None);
    }

    #[test]
    fn proc_stat_busy_time_leaves_idle_out() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        // user + nice + system + irq + softirq + steal = 161 jiffies of 10 ms.
        assert_eq!(proc_stat_busy_usec(stat), Some(161 * 10_000));
        assert_eq!(proc_stat_busy_usec("intr 1 2 3\n"), None);
    }

    #[test]
    fn cgroup_paths_by_controller() {
        let v1 = "9:name=systemd:/\n4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        assert_eq!(cgroup_path(v1, "memory").as_deref(), Some("/docker/abc"));
        assert_eq!(cgroup_path(v1, "cpuacct").as_deref(), Some("/docker/abc"));
        assert_eq!(cgroup_path(v1, "").as_deref(), Some("/"));
        assert_eq!(cgroup_path(v1, "pids"), None);
        assert_eq!(
            cgroup_path("0::/system.slice/x.scope\n", "").as_deref(),
            Some("/system.slice/x.scope")
        );
    }

    #[test]
    fn cpu_percent_is_of_the_limit() {
        let s = Duration::from_secs(1);
        // 0.5 s of CPU in 1 s with a limit of 2 CPUs: 25 %.
        assert!((cpu_percent(1_000_000, 1_500_000, s, 2.0) - 25.0).abs() < 1e-9);
        assert!(
            (cpu_percent(0, 4_000_000, s, 2.0) - 100.0).abs() < 1e-9,
            "clamped"
        );
        assert_eq!(cpu_percent(5, 1, s, 1.0), 0.0, "a counter going back is 0");
        assert_eq!(cpu_percent(0, 1, Duration::ZERO, 1.0), 0.0);
    }

    #[test]
    fn listening_sockets_only() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 190 1 0 100 0 0 10 0\n\
           1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 191 1 0 100 0 0 10 0\n\
           2: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 192 1 0 20 4 30 10 -1\n";
        assert_eq!(listening_ports(tcp).collect::<Vec<_>>(), vec![2024, 8080]);
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue\n\
           0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1 1\n";
        assert_eq!(listening_ports(tcp6).collect::<Vec<_>>(), vec![3000]);
    }

    #[tokio::test]
    async fn a_snapshot_is_sane() {
        let sampler = Sampler::default();
        let m = sampler.snapshot(Path::new("/")).await.expect("snapshot");
        assert!(m.cpu_count >= 1);
        assert!((0.0..=100.0).contains(&m.cpu_used_pct));
        assert!(m.mem_total > 0 && m.mem_used <= m.mem_total, "{m:?}");
        assert!(m.disk_total > 0 && m.disk_used <= m.disk_total, "{m:?}");
        assert!(m.disk_free <= m.disk_total);
        assert!(
            m.timestamp.ends_with('Z') && m.timestamp.len() == 20,
            "{}",
            m.timestamp
        );
    }
}
