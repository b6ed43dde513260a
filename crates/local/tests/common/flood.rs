//! A raw HTTP/1.1 client that streams large request bodies and watches for an early answer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a streamed request ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status of the response, if one arrived before the connection closed.
    pub status: Option<u16>,
    /// The response head and body as received (lossy UTF-8).
    pub response: String,
    /// Body bytes written before the server answered or closed.
    pub sent: u64,
}

impl Outcome {
    /// The response body, with a chunked transfer encoding undone.
    pub fn body(&self) -> String {
        let Some((head, body)) = self.response.split_once("\r\n\r\n") else {
            return String::new();
        };
        if !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return body.to_owned();
        }
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
        }
        out
    }
}

/// POSTs a body of `len` bytes of `x` to `path` on `addr` (`host:port`), with a
/// `Content-Length` or chunked; stops writing as soon as a response (or a close) arrives.
pub async fn stream_body(addr: &str, path: &str, len: u64, chunked: bool) -> Outcome {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {len}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nconnection: close\r\n{framing}\r\n\r\n"
    );
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    let mut sent = 0u64;
    if wr.write_all(head.as_bytes()).await.is_ok() {
        let chunk = vec![b'x'; 64 << 10];
        while sent < len && !reader.is_finished() {
            let n = (len - sent).min(chunk.len() as u64) as usize;
            let ok = if chunked {
                let mut framed = format!("{n:x}\r\n").into_bytes();
                framed.extend_from_slice(&chunk[..n]);
                framed.extend_from_slice(b"\r\n");
                wr.write_all(&framed).await.is_ok()
            } else {
                wr.write_all(&chunk[..n]).await.is_ok()
            };
            if !ok {
                break;
            }
            sent += n as u64;
        }
        if chunked && sent == len {
            let _ = wr.write_all(b"0\r\n\r\n").await;
        }
    }
    // The server answers and closes; a response that never comes is a failure of its own.
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("no answer within 60 s")
        .unwrap();
    drop(wr);
    let response = String::from_utf8_lossy(&got).into_owned();
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok());
    Outcome {
        status,
        response,
        sent,
    }
}
