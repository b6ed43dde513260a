//! A tiny closed-loop HTTP/1.1 load generator for measuring cove (keep-alive connections).
//!
//! `cargo run --release -p cove-host --example load -- http://127.0.0.1:3000/echo/x [connections] [seconds]`
//!
//! Set `LOAD_BEARER=<token>` to send `Authorization: Bearer <token>` (e.g. a Daytona API key).

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url: hyper::Uri = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: load URL [connections] [seconds]"))?
        .parse()?;
    let connections: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let authority = url
        .authority()
        .ok_or_else(|| anyhow::anyhow!("URL needs host:port"))?
        .clone();
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let bearer = std::env::var("LOAD_BEARER")
        .ok()
        .map(|t| hyper::header::HeaderValue::from_str(&format!("Bearer {t}")))
        .transpose()?;

    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (authority, path, bearer) = (authority.clone(), path.clone(), bearer.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let mut request = hyper::Request::get(path.as_str())
                    .header("host", authority.as_str())
                    .body(Empty::<bytes::Bytes>::new())?;
                if let Some(b) = &bearer {
                    request
                        .headers_mut()
                        .insert(hyper::header::AUTHORIZATION, b.clone());
                }
                let started = Instant::now();
                let response = sender.send_request(request).await?;
                let ok = response.status().is_success();
                response.into_body().collect().await?;
                latencies.push(started.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
    };
    println!(
        "{} requests in {elapsed:.1}s: {:.0} req/s, {errors} non-2xx, p50 {:?}, p99 {:?}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50).copied().unwrap_or_default(),
        pct(0.99).copied().unwrap_or_default(),
    );
    Ok(())
}
