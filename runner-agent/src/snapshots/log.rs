//! The log of one snapshot job: the last [`MAX_LOG_BYTES`] of its lines, readable at once or
//! followed by any number of readers until the job ends.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;

use crate::runtime::images::LogSink;

/// What a job's log keeps (older lines are dropped).
pub const MAX_LOG_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Buf {
    /// Absolute offset of `data[0]` (bytes dropped so far).
    start: u64,
    data: VecDeque<u8>,
    closed: bool,
}

/// A bounded, followable log.
pub struct JobLog {
    buf: Mutex<Buf>,
    /// Bumped on every append and at the close.
    changed: watch::Sender<u64>,
}

impl Default for JobLog {
    fn default() -> Self {
        Self {
            buf: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl JobLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one line (a newline is added); ignored once closed.
    pub fn append(&self, line: &str) {
        {
            let mut b = self.lock();
            if b.closed {
                return;
            }
            b.data.extend(line.as_bytes());
            b.data.push_back(b'\n');
            let excess = b.data.len().saturating_sub(MAX_LOG_BYTES);
            if excess > 0 {
                b.data.drain(..excess);
                b.start += excess as u64;
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// No more lines: followers end once they have read everything.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.send_modify(|n| *n += 1);
    }

    /// Everything kept.
    pub fn text(&self) -> Bytes {
        let b = self.lock();
        Bytes::from(b.data.iter().copied().collect::<Vec<u8>>())
    }

    /// The bytes after absolute offset `from` (a reader that fell behind the kept window gets a
    /// marker line first), the next offset, and whether the log is closed.
    fn read_from(&self, from: u64) -> (Option<Bytes>, u64, bool) {
        let b = self.lock();
        let end = b.start + b.data.len() as u64;
        if from >= end {
            return (None, end, b.closed);
        }
        let mut out = Vec::new();
        let skip = if from < b.start {
            out.extend(format!("[... {} bytes dropped]\n", b.start - from).as_bytes());
            0
        } else {
            (from - b.start) as usize
        };
        out.extend(b.data.iter().skip(skip).copied());
        (Some(Bytes::from(out)), end, b.closed)
    }

    /// The whole log, then every new line until the job ends.
    pub fn follow(
        self: std::sync::Arc<Self>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
        let rx = self.changed.subscribe();
        futures::stream::unfold((self, 0u64, rx), |(log, at, mut rx)| async move {
            loop {
                // Mark the current version seen before reading, so no append is missed.
                rx.borrow_and_update();
                let (chunk, next, closed) = log.read_from(at);
                if let Some(chunk) = chunk {
                    return Some((Ok(chunk), (log, next, rx)));
                }
                if closed || rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

impl LogSink for JobLog {
    fn line(&self, line: &str) {
        self.append(line);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::*;

    #[test]
    fn the_log_keeps_its_last_mebibyte() {
        let log = JobLog::default();
        let line = "x".repeat(1023);
        for _ in 0..1100 {
            log.append(&line);
        }
        assert_eq!(log.text().len(), MAX_LOG_BYTES);
        let (chunk, _, closed) = log.read_from(0);
        let chunk = chunk.expect("data");
        assert!(
            chunk.starts_with(b"[... "),
            "a late reader is told lines were dropped"
        );
        assert!(!closed);
    }

    #[tokio::test]
    async fn followers_see_lines_before_the_end_and_stop_at_the_close() {
        let log = Arc::new(JobLog::default());
        log.append("first");
        let mut a = Box::pin(log.clone().follow());
        let mut b = Box::pin(log.clone().follow());
        assert_eq!(a.next().await.expect("first").expect("ok"), "first\n");
        log.append("second");
        assert_eq!(a.next().await.expect("second").expect("ok"), "second\n");
        assert_eq!(
            b.next().await.expect("both").expect("ok"),
            "first\nsecond\n"
        );
        let waiting = tokio::spawn(async move { a.next().await.map(|r| r.expect("ok")) });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a follower waits for more");
        log.append("third");
        log.close();
        log.append("ignored");
        assert_eq!(waiting.await.expect("task").expect("third"), "third\n");
        assert_eq!(b.next().await.expect("third").expect("ok"), "third\n");
        assert!(b.next().await.is_none(), "closed");
    }
}
