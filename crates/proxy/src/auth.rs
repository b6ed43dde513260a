//! Who may open a preview (CONTRACT §9, ARCH §9): public sandboxes pass (but on the protected
//! ports); otherwise a preview token (`X-Daytona-Preview-Token`, `?DAYTONA_SANDBOX_AUTH_KEY=`
//! or the cookie the proxy sets after the query), a user's `Authorization: Bearer <key|JWT>`
//! (checked with `/access`), or a signed URL. Every answer is cached per sandbox and credential
//! (a hash of it) for the configured TTLs, so revocation takes at most that long.

use http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::api::{ControlPlane, Verdict};
use crate::cache::TtlCache;
use crate::config::Config;
use crate::error::ProxyError;
use crate::host::{PROTECTED_PORTS, Preview, Target};

/// The header of a preview token.
pub const TOKEN_HEADER: &str = "x-daytona-preview-token";
/// The query parameter of a preview token.
pub const TOKEN_QUERY: &str = "DAYTONA_SANDBOX_AUTH_KEY";
/// The cookie prefix (`daytona-sandbox-auth-{sandboxId}`).
pub const COOKIE_PREFIX: &str = "daytona-sandbox-auth-";

/// A credential the request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    PreviewToken(String),
    Bearer(http::HeaderValue),
}

/// What let the request in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub sandbox_id: String,
    /// A token that came in the query: the proxy sets it as a cookie, so that the page's own
    /// requests (scripts, images) pass too.
    pub cookie_token: Option<String>,
}

type GrantKey = (String, [u8; 32]);

/// The cached decisions.
#[derive(Default)]
pub struct Gate {
    public: TtlCache<String, bool>,
    grants: TtlCache<GrantKey, bool>,
    signed: TtlCache<(String, u16), Option<String>>,
}

fn digest(kind: &str, secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(secret);
    h.finalize().into()
}

/// The preview token in `?DAYTONA_SANDBOX_AUTH_KEY=` and the query without it.
pub fn split_query(query: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return (None, None);
    };
    let mut token = None;
    let rest: Vec<&str> = q
        .split('&')
        .filter(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == TOKEN_QUERY {
                token = Some(
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                );
                false
            } else {
                true
            }
        })
        .collect();
    let rest = (!rest.is_empty()).then(|| rest.join("&"));
    (token.filter(|t| !t.is_empty()), rest)
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn credentials(id: &str, headers: &HeaderMap, query_token: Option<&str>) -> Vec<Credential> {
    let mut out = Vec::new();
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        out.push(Credential::PreviewToken(t.trim().to_owned()));
    }
    if let Some(t) = query_token {
        out.push(Credential::PreviewToken(t.to_owned()));
    }
    if let Some(t) = cookie(headers, &format!("{COOKIE_PREFIX}{id}")) {
        out.push(Credential::PreviewToken(t));
    }
    if let Some(v) = headers.get(header::AUTHORIZATION)
        && v.to_str()
            .is_ok_and(|s| s.len() > 7 && s[..7].eq_ignore_ascii_case("bearer "))
    {
        out.push(Credential::Bearer(v.clone()));
    }
    out.retain(|c| !matches!(c, Credential::PreviewToken(t) if t.is_empty()));
    out
}

fn unauthorized() -> ProxyError {
    ProxyError::Unauthorized(
        "Missing or invalid preview credentials: send X-Daytona-Preview-Token, \
         ?DAYTONA_SANDBOX_AUTH_KEY= or Authorization: Bearer <API key>"
            .into(),
    )
}

impl Gate {
    /// Admits the request to `p` or refuses it (401).
    pub async fn admit(
        &self,
        cp: &ControlPlane,
        cfg: &Config,
        p: &Preview,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Admitted, ProxyError> {
        let id = match &p.target {
            Target::Signed(token) => return self.signed(cp, cfg, token, p.port).await,
            Target::Sandbox(id) => id.clone(),
        };
        let admitted = Admitted {
            sandbox_id: id.clone(),
            cookie_token: None,
        };
        if !PROTECTED_PORTS.contains(&p.port) && self.public(cp, cfg, &id).await? {
            return Ok(admitted);
        }
        for c in credentials(&id, headers, query_token) {
            if self.granted(cp, cfg, &id, &c).await? {
                let from_query =
                    matches!(&c, Credential::PreviewToken(t) if Some(t.as_str()) == query_token);
                return Ok(Admitted {
                    cookie_token: from_query.then(|| query_token.unwrap_or_default().to_owned()),
                    ..admitted
                });
            }
        }
        Err(unauthorized())
    }

    async fn public(&self, cp: &ControlPlane, cfg: &Config, id: &str) -> Result<bool, ProxyError> {
        if let Some(v) = self.public.get(&id.to_owned()) {
            return Ok(v);
        }
        let public = cp.is_public(id).await? == Verdict::Yes;
        let ttl = if public { cfg.public_ttl } else { cfg.deny_ttl };
        self.public.put(id.to_owned(), public, ttl);
        Ok(public)
    }

    async fn granted(
        &self,
        cp: &ControlPlane,
        cfg: &Config,
        id: &str,
        c: &Credential,
    ) -> Result<bool, ProxyError> {
        let key = match c {
            Credential::PreviewToken(t) => (id.to_owned(), digest("token", t.as_bytes())),
            Credential::Bearer(v) => (id.to_owned(), digest("bearer", v.as_bytes())),
        };
        if let Some(v) = self.grants.get(&key) {
            return Ok(v);
        }
        let verdict = match c {
            Credential::PreviewToken(t) => cp.validate(id, t).await?,
            Credential::Bearer(v) => cp.access(id, v).await?,
        };
        let ok = verdict == Verdict::Yes;
        self.grants
            .put(key, ok, if ok { cfg.auth_ttl } else { cfg.deny_ttl });
        Ok(ok)
    }

    async fn signed(
        &self,
        cp: &ControlPlane,
        cfg: &Config,
        token: &str,
        port: u16,
    ) -> Result<Admitted, ProxyError> {
        let key = (token.to_owned(), port);
        let id = match self.signed.get(&key) {
            Some(v) => v,
            None => {
                let v = cp.signed_sandbox(token, port).await?;
                let ttl = if v.is_some() {
                    cfg.auth_ttl
                } else {
                    cfg.deny_ttl
                };
                self.signed.put(key, v.clone(), ttl);
                v
            }
        };
        let id = id.ok_or_else(|| {
            ProxyError::Unauthorized("The signed preview URL is invalid or has expired".into())
        })?;
        Ok(Admitted {
            sandbox_id: id,
            cookie_token: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_token_is_taken_out() {
        assert_eq!(split_query(None), (None, None));
        assert_eq!(
            split_query(Some("a=1&DAYTONA_SANDBOX_AUTH_KEY=t%2Bk&b=2")),
            (Some("t+k".into()), Some("a=1&b=2".into()))
        );
        assert_eq!(
            split_query(Some("DAYTONA_SANDBOX_AUTH_KEY=x")),
            (Some("x".into()), None)
        );
        assert_eq!(split_query(Some("q=1")), (None, Some("q=1".into())));
    }

    #[test]
    fn credentials_in_order() {
        let mut h = HeaderMap::new();
        h.insert(TOKEN_HEADER, "h".parse().unwrap());
        h.insert(
            header::COOKIE,
            "x=1; daytona-sandbox-auth-s1=c".parse().unwrap(),
        );
        h.insert(header::AUTHORIZATION, "Bearer dtn_k".parse().unwrap());
        let c = credentials("s1", &h, Some("q"));
        assert_eq!(
            c,
            vec![
                Credential::PreviewToken("h".into()),
                Credential::PreviewToken("q".into()),
                Credential::PreviewToken("c".into()),
                Credential::Bearer("Bearer dtn_k".parse().unwrap()),
            ]
        );
        assert!(credentials("other", &HeaderMap::new(), None).is_empty());
    }
}
