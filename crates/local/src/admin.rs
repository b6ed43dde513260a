//! The table and the bootstrap admin: created on `cove up`, the key replaced by
//! `cove rotate-admin-key`.

use anyhow::Context;
use cove_store::{Store, StoreConfig};

use crate::backends::{self, Credentials};
use crate::cli::RotateArgs;

/// Creates the table when missing and the admin account on the first start; returns the admin
/// API key when it was just created (it is printed once).
pub async fn bootstrap(config: &StoreConfig) -> anyhow::Result<Option<String>> {
    let store = Store::new(config);
    store
        .ensure_table()
        .await
        .context("cannot create the DynamoDB table")?;
    let bootstrap = cove_store::bootstrap::ensure_admin(&store)
        .await
        .context("cannot bootstrap the admin account")?;
    Ok(bootstrap.api_key)
}

pub async fn rotate_admin_key(args: RotateArgs) -> anyhow::Result<()> {
    let data_dir = crate::cli::data_dir(args.data_dir)?;
    let credentials = Credentials::from_env();
    let mut embedded = None;
    let endpoint = match args.dynamodb_endpoint {
        Some(url) => url,
        None => {
            let server = backends::start_dynamodb(&data_dir.join("dynamodb")).await?;
            let url = server.url.clone();
            embedded = Some(server);
            url
        }
    };
    let store = Store::new(&StoreConfig {
        endpoint,
        region: credentials.region,
        table: args.dynamodb_table,
        access_key_id: credentials.access_key_id,
        secret_access_key: credentials.secret_access_key,
    });
    store
        .ensure_table()
        .await
        .context("cannot create the DynamoDB table")?;
    let key = cove_store::bootstrap::rotate_admin_key(&store)
        .await
        .context("cannot rotate the admin key")?;
    crate::up::print_stdout(&[format!("DAYTONA_API_KEY={key}")])?;
    if let Some(server) = embedded {
        server.stop().await;
    }
    Ok(())
}
