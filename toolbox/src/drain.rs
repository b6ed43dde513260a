//! The request body is read to its end before the response goes out ([`read_request_to_end`],
//! a middleware of every route): a handler may stop reading early (a multipart upload is done
//! at its closing boundary, before the end of a chunked body; an error answers at once), and
//! hyper would then close the connection while the client still writes the rest, so the client
//! (the runner agent) saw a broken pipe instead of the answer (the 502 flake).

use axum::extract::Request;
use bytes::Bytes;

/// What [`read_request_to_end`] reads at most of a body its handler left, and for how long.
const DRAIN_LIMIT: usize = 8 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

type FrameResult = std::result::Result<hyper::body::Frame<Bytes>, axum::Error>;

/// Reads the rest of a request body that its handler stopped reading (a multipart upload is
/// done at its closing boundary, before the end of a chunked body; an error answers early)
/// before the response goes out. Otherwise hyper gives up on the connection and closes it while
/// the client still writes the end of the body: the client (the runner agent) then sees a
/// broken pipe instead of the answer, although the request was carried out.
pub async fn read_request_to_end(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<FrameResult>(2);
    let weak = tx.downgrade();
    let pump = tokio::spawn(pump_body(body, tx));
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let inner = axum::body::Body::new(http_body_util::StreamBody::new(frames));
    let resp = next.run(Request::from_parts(parts, inner)).await;
    // Wait only when the handler is done with the body (a handler still holding it may read
    // it while its response streams).
    let handler_done = weak.upgrade().is_some_and(|tx| tx.is_closed());
    if handler_done && tokio::time::timeout(DRAIN_TIME, pump).await.is_err() {
        tracing::debug!("request body not finished within the drain time");
    }
    resp
}

/// Passes the body's frames to the handler; once the handler drops its end, reads on (up to
/// [`DRAIN_LIMIT`] bytes) to the end of the body.
async fn pump_body(mut body: axum::body::Body, tx: tokio::sync::mpsc::Sender<FrameResult>) {
    use http_body_util::BodyExt;
    let mut drained = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let unsent = match tx.send(Ok(frame)).await {
            Ok(()) => continue,
            Err(tokio::sync::mpsc::error::SendError(unsent)) => unsent,
        };
        drained += unsent
            .ok()
            .and_then(|f| f.into_data().ok())
            .map_or(0, |d| d.len());
        if drained > DRAIN_LIMIT {
            return;
        }
    }
}
