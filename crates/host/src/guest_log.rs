//! Guest stdout/stderr, forwarded line by line to cove's stderr as `[<component-id>] line`.
//!
//! A guest's bytes never reach the log raw: control characters (`\r`, ESC, the other C0 and C1
//! codes, DEL), Unicode bidirectional overrides and invalid UTF-8 are written as escapes
//! (`\r`, `\x1b`, `\u{202e}`), so a component cannot forge log lines, colours or cursor moves.
//! Tabs are kept.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Where finished lines go: cove's stderr, or a test's buffer.
pub trait LineSink: Send + Sync + 'static {
    /// Writes one whole line (prefix, escaped text and newline) at once.
    fn write_line(&self, line: &[u8]);
}

struct Stderr;

impl LineSink for Stderr {
    fn write_line(&self, line: &[u8]) {
        // One write per line keeps lines from different instances whole.
        let _ = std::io::stderr().lock().write_all(line);
    }
}

/// A `StdoutStream` that prefixes every line with the component id.
#[derive(Clone)]
pub struct GuestLog {
    prefix: Arc<str>,
    sink: Arc<dyn LineSink>,
}

impl GuestLog {
    pub fn new(component: &str) -> Self {
        Self::with_sink(component, Arc::new(Stderr))
    }

    pub fn with_sink(component: &str, sink: Arc<dyn LineSink>) -> Self {
        Self {
            prefix: format!("[{component}] ").into(),
            sink,
        }
    }

    fn writer(&self) -> LineWriter {
        LineWriter {
            prefix: self.prefix.clone(),
            sink: self.sink.clone(),
            pending: Vec::new(),
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

/// Buffers a partial line until its newline (or the stream's end) arrives.
struct LineWriter {
    prefix: Arc<str>,
    sink: Arc<dyn LineSink>,
    pending: Vec<u8>,
}

/// Longest partial line kept before it is written out anyway.
const MAX_PENDING: usize = 16 * 1024;

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let mut out = Vec::with_capacity(self.prefix.len() + line.len() + 1);
        out.extend_from_slice(self.prefix.as_bytes());
        escape_into(line, &mut out);
        out.push(b'\n');
        self.sink.write_line(&out);
    }

    fn flush_partial(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(i);
            if self.pending.is_empty() {
                self.emit(line);
            } else {
                self.pending.extend_from_slice(line);
                let whole = std::mem::take(&mut self.pending);
                self.emit(&whole);
            }
            rest = &tail[1..];
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_PENDING {
            self.flush_partial();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

/// Appends `line` to `out` with everything that could act on a terminal escaped.
pub fn escape_into(line: &[u8], out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Fast path: printable ASCII (and tabs) needs no escaping.
    if line
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        out.extend_from_slice(line);
        return;
    }
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            // Writing into a Vec cannot fail.
            let _ = match c {
                '\t' => write!(out, "\t"),
                '\r' => write!(out, "\\r"),
                '\n' => write!(out, "\\n"),
                c if (c as u32) < 0x100 && c.is_control() => write!(out, "\\x{:02x}", c as u32),
                c if is_unsafe_format_char(c) => write!(out, "\\u{{{:x}}}", c as u32),
                c => write!(out, "{c}"),
            };
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// Bidirectional embeddings, overrides and isolates, and the line/paragraph separators: invisible
/// characters that reorder or break what a reader sees.
fn is_unsafe_format_char(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_partial();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn escaped(line: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(line, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_text_passes_unchanged() {
        assert_eq!(
            escaped("GET /api/sandboxes 200 in 3 ms \t{\"a\":\"b\\\"c\"} héllo ✓".as_bytes()),
            "GET /api/sandboxes 200 in 3 ms \t{\"a\":\"b\\\"c\"} héllo ✓"
        );
    }

    #[test]
    fn colours_and_carriage_returns_are_escaped() {
        assert_eq!(escaped(b"\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        // `\r` would let a line overwrite the start of itself (or what a terminal shows).
        assert_eq!(
            escaped(b"ok\r2024-01-01T00:00:00Z ERROR forged"),
            "ok\\r2024-01-01T00:00:00Z ERROR forged"
        );
        assert_eq!(
            escaped(b"bell\x07 nul\x00 del\x7f"),
            "bell\\x07 nul\\x00 del\\x7f"
        );
        // C1 controls (as UTF-8) include the 8-bit CSI.
        assert_eq!(escaped("\u{9b}31m".as_bytes()), "\\x9b31m");
    }

    #[test]
    fn bidi_overrides_and_invalid_utf8_are_escaped() {
        assert_eq!(escaped("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(escaped(b"bad \xff\xfe end"), "bad \\xff\\xfe end");
    }

    #[derive(Default)]
    struct Lines(std::sync::Mutex<Vec<u8>>);

    impl LineSink for Lines {
        fn write_line(&self, line: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(line);
        }
    }

    #[tokio::test]
    async fn a_guest_cannot_start_a_line_without_its_prefix() {
        use tokio::io::AsyncWriteExt;
        let lines = Arc::new(Lines::default());
        let log = GuestLog::with_sink("echo", lines.clone());
        let mut w = log.writer();
        w.write_all(b"one\r\x1b[2K[api-keys] two\nthr")
            .await
            .unwrap();
        w.write_all(b"ee\n\x1b[31m").await.unwrap();
        w.shutdown().await.unwrap();
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "[echo] one\\r\\x1b[2K[api-keys] two\n[echo] three\n[echo] \\x1b[31m\n"
        );
        assert!(!text.contains('\x1b') && !text.contains('\r'));
    }
}
