//! Domain patterns (`example.com`, `*.example.com`) and the verdict of a name.

/// A normalised list of patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainList {
    exact: Vec<String>,
    /// `*.example.com` stored as `.example.com`.
    suffixes: Vec<String>,
}

/// A name as compared: lower case, without a trailing dot.
pub fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl DomainList {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let mut list = Self::default();
        for p in patterns {
            let p = normalise(p.as_ref());
            match p.strip_prefix("*.") {
                Some(rest) => list.suffixes.push(format!(".{rest}")),
                None if !p.is_empty() => list.exact.push(p),
                None => {}
            }
        }
        list
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
    pub fn matches(&self, name: &str) -> bool {
        let name = normalise(name);
        self.exact.contains(&name)
            || self
                .suffixes
                .iter()
                .any(|s| name.len() > s.len() && name.ends_with(s.as_str()))
    }
}

/// The domain part of a sandbox's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainPolicy {
    pub allow: DomainList,
    pub deny: DomainList,
}

impl DomainPolicy {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// `Ok` to go on (to the pinning check), `Err(reason)` to refuse.
    pub fn judge(&self, name: Option<&str>) -> Result<(), &'static str> {
        match name {
            Some(n) if self.deny.matches(n) => Err("domain in the deny-list"),
            Some(n) if !self.allow.is_empty() && !self.allow.matches(n) => {
                Err("domain not in the allow-list")
            }
            Some(n) if n.parse::<std::net::IpAddr>().is_ok() => Err("an IP literal, not a name"),
            Some(_) => Ok(()),
            None => Err("no server name (SNI or Host)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard() {
        let l = DomainList::new(&["Allowed.test.", "*.example.com"]);
        assert!(l.matches("allowed.test"));
        assert!(l.matches("ALLOWED.TEST."));
        assert!(!l.matches("sub.allowed.test"));
        assert!(!l.matches("allowed.test.evil"));
        assert!(l.matches("a.example.com"));
        assert!(l.matches("a.b.example.com"));
        assert!(!l.matches("example.com"));
        assert!(!l.matches("badexample.com"));
        assert!(!DomainList::new::<&str>(&[]).matches("x.y"));
    }

    #[test]
    fn verdicts() {
        let p = DomainPolicy {
            allow: DomainList::new(&["*.test"]),
            deny: DomainList::new(&["denied.test"]),
        };
        assert_eq!(p.judge(Some("allowed.test")), Ok(()));
        assert!(p.judge(Some("denied.test")).is_err());
        assert!(p.judge(Some("other.org")).is_err());
        assert!(p.judge(None).is_err());
        let deny_only = DomainPolicy {
            deny: DomainList::new(&["denied.test"]),
            ..Default::default()
        };
        assert_eq!(deny_only.judge(Some("other.org")), Ok(()));
        assert!(deny_only.judge(Some("denied.test")).is_err());
        assert!(deny_only.judge(Some("198.51.100.1")).is_err());
        assert!(deny_only.judge(None).is_err());
    }
}
