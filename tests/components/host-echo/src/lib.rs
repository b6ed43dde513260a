//! `host-echo`: a test component for `cove-host` (wasi:http 0.3 via spin-sdk 7).
//!
//! - `/spin`: loops forever (request timeout test)
//! - `/alloc?mb=N`: allocates and touches N MiB (memory limit test)
//! - `/trap`: panics (trap -> 500 test)
//! - `/call?url=U`: outbound GET to `U`; replies `status:<code> body:<body>` or `error:<text>`
//! - `/var?name=X`: reads variable `X`; replies `var:<value>` or `error:<text>` (404)
//! - `/body`: reads the whole request body; replies `read:<bytes>` or `body error:<text>` (400)
//! - `/ansi`: prints a colour escape and a carriage return on stderr (log hygiene test)
//! - anything else: `method=<m> path=<p> greeting=<var greeting> env=<ECHO_ENV> component=<COMPONENT>`
#![cfg(target_arch = "wasm32")]

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    // `url=` takes the rest of the query verbatim so URLs need no escaping.
    if name == "url" {
        return query.find("url=").map(|i| &query[i + 4..]);
    }
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    match path.rsplit('/').next().unwrap_or("") {
        "spin" => {
            let mut i: u64 = 0;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        "alloc" => {
            let mb: usize = query_param(&query, "mb")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let mut v: Vec<u8> = Vec::new();
            if v.try_reserve_exact(mb << 20).is_err() {
                return (
                    StatusCode::INSUFFICIENT_STORAGE,
                    format!("alloc failed: {mb} MiB"),
                );
            }
            v.resize(mb << 20, 1);
            let sum: usize = v.iter().step_by(4096).map(|b| *b as usize).sum();
            (StatusCode::OK, format!("allocated {mb} MiB ({sum} pages)"))
        }
        "trap" => panic!("trap requested"),
        "body" => match req.into_body().bytes().await {
            Ok(b) => (StatusCode::OK, format!("read:{}", b.len())),
            Err(e) => (StatusCode::BAD_REQUEST, format!("body error:{e:?}")),
        },
        "ansi" => {
            eprintln!("\x1b[31mred\x1b[0m\r2000-01-01T00:00:00Z ERROR forged");
            (StatusCode::OK, "printed".to_owned())
        }
        "call" => {
            let url = query_param(&query, "url").unwrap_or("").to_owned();
            match spin_sdk::http::get(&url).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = match resp.into_body().bytes().await {
                        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                        Err(e) => format!("<body error {e:?}>"),
                    };
                    (StatusCode::OK, format!("status:{status} body:{body}"))
                }
                Err(e) => (StatusCode::BAD_GATEWAY, format!("error:{e:?}")),
            }
        }
        "var" => {
            let name = query_param(&query, "name").unwrap_or("").to_owned();
            match spin_sdk::variables::get(&name).await {
                Ok(v) => (StatusCode::OK, format!("var:{v}")),
                Err(e) => (StatusCode::NOT_FOUND, format!("error:{e:?}")),
            }
        }
        _ => {
            let greeting = spin_sdk::variables::get("greeting")
                .await
                .unwrap_or_else(|e| format!("<{e:?}>"));
            let env = std::env::var("ECHO_ENV").unwrap_or_default();
            let component = std::env::var("COMPONENT").unwrap_or_default();
            eprintln!("echo {path}");
            println!("stdout line for {path}");
            (
                StatusCode::OK,
                format!(
                    "method={} path={path} greeting={greeting} env={env} component={component}",
                    req.method()
                ),
            )
        }
    }
}
