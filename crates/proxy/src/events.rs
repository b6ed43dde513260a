//! Real-time events over Socket.IO (Engine.IO v4), as the official SDKs use them (CONTRACT §11):
//! `/api/socket.io/?organizationId=..&EIO=4&transport=websocket` with `auth: {"token": ..}`.
//!
//! The relay keeps no state of the platform's own: the control plane's
//! `GET /api/events/sandboxes` (the store's outbox, written with the changes themselves) is the
//! source, asked with the client's own credential.
//!
//! * **Connect** (a connect middleware): the token and `organizationId` go to the events route
//!   without a cursor; its refusal (401/403, or the control plane failing) refuses the socket,
//!   so the client sees `connect_error` with the message, not a hang. Its answer names the
//!   organization and the starting cursor (now: a new socket gets only new events).
//! * **Feeds**: sockets of one credential and organization share one [`Feed`], a task that
//!   polls the route every [`RelayLimits::poll_interval`] and emits every event to each of them.
//!   It reads again from [`RelayLimits::lookback`] before its newest cursor (writers' clocks
//!   differ a little, so an event may land behind one already seen) and drops the cursors it
//!   has emitted. It stops when its last socket disconnects, and disconnects its sockets when the
//!   credential stops working (401/403).
//! * **Bounds**: sockets per organization, feeds overall, items per poll and pages per tick.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::service::SocketIoService;

use crate::Body;
use crate::api::{ControlPlane, EventCredential, EventsPage};
use crate::error::ProxyError;

/// Where the SDKs open their connection (`{apiUrl}/socket.io/`).
pub const SOCKET_IO_PATH: &str = "/api/socket.io";

/// The relay's bounds and pace.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// How often a feed asks for new events.
    pub poll_interval: Duration,
    /// How far behind its newest cursor a feed reads again.
    pub lookback: Duration,
    /// Sockets one organization may hold open.
    pub max_sockets_per_org: usize,
    /// Feeds (distinct credentials and organizations) at once.
    pub max_feeds: usize,
    /// Outbox items one request reads.
    pub page_limit: usize,
    /// Requests one poll may make when pages come back full.
    pub max_pages: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(300),
            lookback: Duration::from_millis(1500),
            max_sockets_per_org: 64,
            max_feeds: 1024,
            page_limit: 100,
            max_pages: 5,
        }
    }
}

/// What a socket was admitted with (its connect middleware → its connect handler).
#[derive(Debug, Clone)]
struct Admitted {
    key: FeedKey,
    cursor: String,
}

/// One feed per credential (as presented) and organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FeedKey {
    credential: EventCredential,
    org: String,
}

/// The sockets one poller emits to.
struct Feed {
    sockets: Vec<SocketRef>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Registry {
    feeds: HashMap<FeedKey, Feed>,
    per_org: HashMap<String, usize>,
}

/// The Socket.IO server of the relay: serve requests under [`SOCKET_IO_PATH`] with
/// [`Relay::handle`].
pub struct Relay {
    cp: ControlPlane,
    limits: RelayLimits,
    registry: Mutex<Registry>,
    service: SocketIoService<engineioxide::service::NotFoundService>,
}

/// Why a socket is refused (the client's `connect_error` message).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("Unauthorized: {0}")]
    Credential(String),
    #[error("Too many connections for this organization")]
    TooMany,
    #[error("Events are unavailable: {0}")]
    Unavailable(String),
}

impl Relay {
    pub fn new(cp: ControlPlane, limits: RelayLimits) -> Arc<Self> {
        Arc::new_cyclic(|weak: &std::sync::Weak<Relay>| {
            let (service, io) = SocketIo::builder()
                .req_path(SOCKET_IO_PATH)
                .max_buffer_size(4 * limits.page_limit * limits.max_pages)
                .ws_max_message_size(64 << 10)
                .build_svc();
            let admit = {
                let weak = weak.clone();
                move |s: SocketRef, TryData(auth): TryData<Value>| {
                    let relay = weak.upgrade();
                    async move {
                        match relay {
                            Some(r) => r.admit(&s, auth.ok()).await,
                            None => Err(Refusal::Unavailable("shutting down".into())),
                        }
                    }
                }
            };
            let connected = {
                let weak = weak.clone();
                move |s: SocketRef| {
                    let relay = weak.upgrade();
                    async move {
                        if let Some(r) = relay {
                            r.connected(s);
                        }
                    }
                }
            };
            io.ns("/", connected.with(admit));
            Self {
                cp,
                limits,
                registry: Mutex::new(Registry::default()),
                service,
            }
        })
    }

    /// Whether `path` is the relay's.
    pub fn owns(path: &str) -> bool {
        path.strip_prefix(SOCKET_IO_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Serves one Engine.IO request (the websocket upgrade, or a polling request).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        match hyper::service::Service::call(&self.service, req).await {
            Ok(resp) => resp.map(|b| b.map_err(|never| match never {}).boxed()),
            Err(never) => match never {},
        }
    }

    /// The connect middleware: the credential must read the organization's events.
    async fn admit(&self, s: &SocketRef, auth: Option<Value>) -> Result<(), Refusal> {
        let parts = s.req_parts();
        let token = auth
            .as_ref()
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Refusal::Credential("no token".into()))?;
        let authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Refusal::Credential("malformed token".into()))?;
        let organization = query_param(parts.uri.query().unwrap_or_default(), "organizationId")
            .filter(|o| !o.is_empty())
            .map(|o| HeaderValue::from_str(&o))
            .transpose()
            .map_err(|_| Refusal::Credential("malformed organizationId".into()))?;
        let credential = EventCredential {
            authorization,
            organization,
            host: parts.headers.get(header::HOST).cloned(),
        };
        let page = self
            .cp
            .sandbox_events(&credential, None, self.limits.page_limit)
            .await
            .map_err(|e| match e {
                ProxyError::Upstream {
                    status, message, ..
                } if status.is_client_error() => Refusal::Credential(message),
                other => Refusal::Unavailable(other.to_string()),
            })?;
        let key = FeedKey {
            credential,
            org: page.organization_id.clone(),
        };
        self.check_room(&key)?;
        tracing::debug!(socket = %s.id, org = %key.org, "events socket admitted");
        s.extensions.insert(Admitted {
            key,
            cursor: page.cursor,
        });
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding it leaves counts that are still consistent enough to go on.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_room(&self, key: &FeedKey) -> Result<(), Refusal> {
        let reg = self.lock();
        let org_full =
            reg.per_org.get(&key.org).copied().unwrap_or(0) >= self.limits.max_sockets_per_org;
        let feeds_full = !reg.feeds.contains_key(key) && reg.feeds.len() >= self.limits.max_feeds;
        if org_full || feeds_full {
            return Err(Refusal::TooMany);
        }
        Ok(())
    }

    /// The connect handler: the socket joins its feed (started when it is the first).
    fn connected(self: Arc<Self>, s: SocketRef) {
        let Some(adm) = s.extensions.get::<Admitted>() else {
            tracing::warn!(socket = %s.id, "events socket connected without admission");
            let _ = s.disconnect();
            return;
        };
        if self.check_room(&adm.key).is_err() {
            let _ = s.disconnect();
            return;
        }
        {
            let mut reg = self.lock();
            *reg.per_org.entry(adm.key.org.clone()).or_default() += 1;
            match reg.feeds.get_mut(&adm.key) {
                Some(feed) => feed.sockets.push(s.clone()),
                None => {
                    let task = tokio::spawn(poll(
                        Arc::downgrade(&self),
                        adm.key.clone(),
                        adm.cursor.clone(),
                    ));
                    let feed = Feed {
                        sockets: vec![s.clone()],
                        task,
                    };
                    reg.feeds.insert(adm.key.clone(), feed);
                }
            }
        }
        tracing::info!(socket = %s.id, org = %adm.key.org, "events socket connected");
        let weak = Arc::downgrade(&self);
        s.on_disconnect(move |s: SocketRef| {
            let relay = weak.upgrade();
            async move {
                if let Some(r) = relay {
                    r.leave(&adm.key, &s);
                }
            }
        });
    }

    /// Removes a disconnected socket; the feed stops with its last one.
    fn leave(&self, key: &FeedKey, s: &SocketRef) {
        let mut reg = self.lock();
        if let Some(n) = reg.per_org.get_mut(&key.org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                reg.per_org.remove(&key.org);
            }
        }
        let empty = reg.feeds.get_mut(key).is_some_and(|feed| {
            feed.sockets.retain(|x| x.id != s.id);
            feed.sockets.is_empty()
        });
        if empty && let Some(feed) = reg.feeds.remove(key) {
            feed.task.abort();
        }
        tracing::debug!(socket = %s.id, org = %key.org, "events socket disconnected");
    }

    /// The feed's sockets now (`None`: the feed is gone).
    fn sockets(&self, key: &FeedKey) -> Option<Vec<SocketRef>> {
        self.lock().feeds.get(key).map(|f| f.sockets.clone())
    }

    /// Disconnects every socket of a feed whose credential no longer works.
    fn revoke(&self, key: &FeedKey) {
        for s in self.sockets(key).unwrap_or_default() {
            let _ = s.disconnect();
        }
    }

    /// Number of open feeds and sockets (diagnostics and tests).
    pub fn counts(&self) -> (usize, usize) {
        let reg = self.lock();
        (reg.feeds.len(), reg.per_org.values().sum())
    }
}

/// What a feed has emitted: the cursors of its lookback window, and where it stands.
#[derive(Debug)]
struct Seen {
    /// The events' `(cursor, event)` already emitted, within the lookback window.
    emitted: BTreeSet<(String, String)>,
    /// The newest cursor read.
    newest: String,
    /// Never read before this (the feed's start: older events happened before its sockets).
    floor_ms: i64,
}

impl Seen {
    fn new(start: String) -> Self {
        Self {
            floor_ms: cursor_ms(&start).unwrap_or(0),
            newest: start,
            emitted: BTreeSet::new(),
        }
    }

    /// Where the next poll reads from: `lookback` before the newest cursor, not before the floor.
    fn read_from(&self, lookback: Duration) -> String {
        let back = i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX);
        let ms = cursor_ms(&self.newest)
            .unwrap_or(0)
            .saturating_sub(back)
            .max(self.floor_ms);
        time_cursor(ms)
    }

    /// The events of `page` not emitted yet, in order; the window moves on.
    fn fresh(&mut self, page: EventsPage, lookback: Duration) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for ev in page.events {
            if ev.cursor > self.newest {
                self.newest.clone_from(&ev.cursor);
            }
            if self.emitted.insert((ev.cursor, ev.event.clone())) {
                out.push((ev.event, ev.data));
            }
        }
        let low = self.read_from(lookback);
        self.emitted = self.emitted.split_off(&(low, String::new()));
        out
    }
}

/// The feed's loop: poll, emit, until its sockets are gone or its credential is refused.
async fn poll(relay: std::sync::Weak<Relay>, key: FeedKey, start: String) {
    let mut seen = Seen::new(start);
    let Some(limits) = relay.upgrade().map(|r| r.limits) else {
        return;
    };
    let mut tick = tokio::time::interval(limits.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(r) = relay.upgrade() else { return };
        for _ in 0..limits.max_pages {
            let from = seen.read_from(limits.lookback);
            let page = match r
                .cp
                .sandbox_events(&key.credential, Some(&from), limits.page_limit)
                .await
            {
                Ok(p) => p,
                Err(ProxyError::Upstream {
                    status, message, ..
                }) if status == http::StatusCode::UNAUTHORIZED
                    || status == http::StatusCode::FORBIDDEN =>
                {
                    tracing::info!(org = %key.org, %status, message, "events credential refused: disconnecting");
                    r.revoke(&key);
                    return;
                }
                Err(e) => {
                    tracing::warn!(org = %key.org, error = %e, "events poll failed");
                    break;
                }
            };
            let full = page.events.len() >= limits.page_limit;
            let events = seen.fresh(page, limits.lookback);
            let Some(sockets) = r.sockets(&key) else {
                return;
            };
            for (event, data) in &events {
                for s in &sockets {
                    if let Err(e) = s.emit(event.as_str(), data) {
                        tracing::debug!(socket = %s.id, error = %e, "event not sent");
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
}

/// Digits of the millisecond part of a cursor of the events route.
const MS_DIGITS: usize = 13;

/// The millisecond a cursor of the events route starts with.
fn cursor_ms(cursor: &str) -> Option<i64> {
    cursor.get(..MS_DIGITS)?.parse().ok()
}

/// A cursor of the events route at `ms` (before that millisecond's events).
fn time_cursor(ms: i64) -> String {
    format!("{:0MS_DIGITS$}", ms.max(0))
}

/// A query parameter, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RemoteEvent;

    fn page(cursors: &[&str]) -> EventsPage {
        EventsPage {
            events: cursors
                .iter()
                .map(|c| RemoteEvent {
                    cursor: (*c).to_owned(),
                    event: "sandbox.state.updated".into(),
                    data: Value::Null,
                })
                .collect(),
            cursor: String::new(),
            organization_id: "org".into(),
        }
    }

    #[test]
    fn a_feed_reads_behind_its_newest_cursor_and_emits_each_event_once() {
        let lookback = Duration::from_millis(1000);
        let mut seen = Seen::new(time_cursor(10_000));
        assert_eq!(
            seen.read_from(lookback),
            time_cursor(10_000),
            "never before the floor"
        );
        let a = "0000000010500#a#0000000001";
        let b = "0000000012000#b#0000000001";
        assert_eq!(seen.fresh(page(&[a, b]), lookback).len(), 2);
        assert_eq!(seen.read_from(lookback), time_cursor(11_000));
        // Read again, with a late event of a lagging writer between them: only it is new.
        let late = "0000000011500#c#0000000003";
        let again = seen.fresh(page(&[late, b]), lookback);
        assert_eq!(again.len(), 1);
        assert_eq!(seen.newest, b);
        // The window forgets what is behind it.
        assert!(
            seen.emitted
                .iter()
                .all(|(c, _)| c.as_str() >= "0000000011000")
        );
    }

    #[test]
    fn the_relay_owns_its_path_only() {
        assert!(Relay::owns("/api/socket.io/"));
        assert!(Relay::owns("/api/socket.io"));
        assert!(!Relay::owns("/api/socket.iox"));
        assert!(!Relay::owns("/api/sandbox"));
        assert_eq!(
            query_param("EIO=4&organizationId=a%2Db&x", "organizationId").as_deref(),
            Some("a-b")
        );
    }
}
