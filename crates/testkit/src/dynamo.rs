//! A DynamoDB for tests.
//!
//! Tests talk to a real DynamoDB API: by default an in-process dynoxide on a loopback port (one per
//! test process, on its own thread so it outlives each test's runtime); when
//! `COVE_TEST_DYNAMODB_ENDPOINT` is set (CI sets it to AWS DynamoDB Local), that endpoint instead.
//! Every call to [`store`] gets a fresh table, so tests never see each other's items.

use std::sync::OnceLock;

use cove_store::{Store, StoreConfig};

/// The DynamoDB endpoint tests use.
pub fn dynamodb_endpoint() -> String {
    if let Ok(e) = std::env::var("COVE_TEST_DYNAMODB_ENDPOINT")
        && !e.is_empty()
    {
        return e;
    }
    static EMBEDDED: OnceLock<String> = OnceLock::new();
    EMBEDDED.get_or_init(start_dynoxide).clone()
}

fn start_dynoxide() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime for dynoxide");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind dynoxide");
            let addr = listener.local_addr().expect("dynoxide address");
            let db = dynoxide::Database::memory().expect("dynoxide memory database");
            tx.send(format!("http://{addr}"))
                .expect("report dynoxide address");
            dynoxide::server::serve_on(listener, db).await;
        });
    });
    rx.recv().expect("dynoxide started")
}

/// A store on a new, empty table.
pub async fn store() -> Store {
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    let store = Store::new(&StoreConfig::local(dynamodb_endpoint(), table));
    store.ensure_table().await.expect("create test table");
    store
}
