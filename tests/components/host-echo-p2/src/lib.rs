//! `host-echo-p2`: proves cove still serves the WASIp2 `wasi:http/incoming-handler@0.2`.
//! Replies `p2 method=<m> path=<path-with-query>`.
#![cfg(target_arch = "wasm32")]

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(EchoP2);

struct EchoP2;

impl wasip2::exports::http::incoming_handler::Guest for EchoP2 {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_owned(),
            Method::Post => "POST".to_owned(),
            other => format!("{other:?}"),
        };
        let path = request.path_with_query().unwrap_or_default();
        let text = format!("p2 method={method} path={path}");

        let response = OutgoingResponse::new(Fields::new());
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(out) = body.write() {
            let _ = out.blocking_write_and_flush(text.as_bytes());
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
