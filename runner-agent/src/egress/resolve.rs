//! Name resolution of the proxy (DNS pinning): a hosts file first when configured (re-read
//! when it changes; tests point it at their own test hosts), then the host's resolver.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

/// The proxy's resolver.
#[derive(Debug, Default)]
pub struct Resolver {
    hosts: Option<PathBuf>,
    cache: Mutex<Option<(SystemTime, String)>>,
}

impl Resolver {
    pub fn new(hosts: Option<PathBuf>) -> Self {
        Self {
            hosts,
            cache: Mutex::default(),
        }
    }

    /// The IPv4 addresses of `name` (empty when it does not resolve).
    pub async fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        let from_file = self.hosts_text().map(|t| in_hosts(&t, name));
        if let Some(v) = from_file.filter(|v| !v.is_empty()) {
            return v;
        }
        match tokio::net::lookup_host((name, 0)).await {
            Ok(addrs) => addrs
                .filter_map(|a| match a.ip() {
                    std::net::IpAddr::V4(ip) => Some(ip),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect(),
            Err(e) => {
                tracing::debug!(%name, error = %e, "egress name does not resolve");
                Vec::new()
            }
        }
    }

    fn hosts_text(&self) -> Option<String> {
        let path = self.hosts.as_ref()?;
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        let mut g = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, text)) = g.as_ref().filter(|(at, _)| *at == modified) {
            let _ = at;
            return Some(text.clone());
        }
        let text = std::fs::read_to_string(path).ok()?;
        *g = Some((modified, text.clone()));
        Some(text)
    }
}

/// The addresses of `name` in hosts-file text (`address name...` lines, `#` comments).
pub fn in_hosts(text: &str, name: &str) -> Vec<Ipv4Addr> {
    let name = super::pattern::normalise(name);
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let ip = f.next()?.parse::<Ipv4Addr>().ok()?;
            f.any(|n| super::pattern::normalise(n) == name)
                .then_some(ip)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lines() {
        let t = "# test\n198.51.100.1 allowed.test a2.test\n198.51.100.9 Allowed.Test # twice\n::1 allowed.test\n";
        let want: Vec<Ipv4Addr> = ["198.51.100.1", "198.51.100.9"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        assert_eq!(in_hosts(t, "allowed.test"), want);
        assert!(in_hosts(t, "other.test").is_empty());
    }

    #[tokio::test]
    async fn file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hosts");
        std::fs::write(&path, "198.51.100.1 a.test\n").expect("write");
        let r = Resolver::new(Some(path.clone()));
        assert_eq!(r.lookup("a.test").await, [Ipv4Addr::new(198, 51, 100, 1)]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "198.51.100.2 a.test\n").expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(1))
            .expect("mtime");
        assert_eq!(r.lookup("a.test").await, [Ipv4Addr::new(198, 51, 100, 2)]);
    }
}
