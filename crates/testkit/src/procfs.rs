//! What `/proc` says about a process: resident memory, CPU time, children (Linux).

use std::time::Duration;

/// A process's resource use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Resident set size (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub rss_bytes: u64,
    /// User + system CPU time used so far (`/proc/<pid>/stat`).
    pub cpu: Duration,
}

/// `pid`'s memory and CPU time; `None` when it is gone (or a zombie: no `VmRSS`).
pub fn usage(pid: u32) -> Option<Usage> {
    Some(Usage {
        rss_bytes: rss_bytes(pid)?,
        cpu: cpu_time(pid)?,
    })
}

/// `VmRSS` of `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    parse_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// User + system CPU time `pid` has used.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    Some(ticks(stat.cpu_ticks))
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .is_some_and(|s| s.state != 'Z')
}

/// PIDs of the live (not zombie) children of `parent` whose command name (`comm`) is `name`.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|s| s.ppid == parent && s.comm == name && s.state != 'Z')
        })
        .collect()
}

/// The fields of `/proc/<pid>/stat` the testkit reads.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    comm: String,
    state: char,
    ppid: u32,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name is in parentheses and may itself hold spaces and
/// parentheses, so fields are counted from the last `)`: state is field 3, ppid 4, utime 14,
/// stime 15 (proc(5)).
fn parse_stat(stat: &str) -> Option<Stat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        cpu_ticks: field(14)?.parse::<u64>().ok()? + field(15)?.parse::<u64>().ok()?,
    })
}

/// `VmRSS:  1234 kB` → bytes.
fn parse_rss(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn ticks(n: u64) -> Duration {
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_nanos(n.saturating_mul(1_000_000_000) / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let line =
            "4242 (cove (x) y) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 31 0 0 20 0 9 0 1 2 3";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                comm: "cove (x) y".into(),
                state: 'S',
                ppid: 17,
                cpu_ticks: 281,
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 1"), None);
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tcove\nVmPeak:\t  9000 kB\nVmRSS:\t   1536 kB\nThreads:\t4\n";
        assert_eq!(parse_rss(status), Some(1536 * 1024));
        assert_eq!(parse_rss("Name:\tzombie\nState:\tZ\n"), None);
    }

    #[test]
    fn this_process_and_its_children_are_visible() {
        let me = std::process::id();
        let u = usage(me).expect("own usage");
        assert!(u.rss_bytes > 1 << 20, "{u:?}");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        // Other tests of this process may run `sleep` children too: look for this one.
        let found = children_named(me, "sleep");
        let was_alive = alive(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
        assert!(was_alive);
        assert!(
            !children_named(me, "sleep").contains(&child.id()),
            "reaped: gone"
        );
        assert!(children_named(me, "no-such-command").is_empty());
        assert!(!alive(child.id()));
    }
}
