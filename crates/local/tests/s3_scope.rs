//! The embedded S3 server with scoped credentials (`object-storage/push-access`), driven by
//! aws-sdk-s3: organization A's credentials reach `{bucket}/A/` only, and expire.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use cove_local::backends::{EmbeddedServer, start_s3};
use cove_local::s3_scope::S3Scope;

const SECRET: &[u8] = b"test-platform-secret";
const BUCKET: &str = "cove";
const ORG_A: &str = "0b3c1b1e-6a55-4c4e-9d7e-aaaaaaaaaaaa";
const ORG_B: &str = "0b3c1b1e-6a55-4c4e-9d7e-bbbbbbbbbbbb";

async fn server(dir: &std::path::Path) -> EmbeddedServer {
    let scope = S3Scope {
        master_access_key: "cove".into(),
        master_secret_key: "cove-secret".into(),
        platform_secret: SECRET.to_vec(),
        bucket: BUCKET.into(),
    };
    start_s3(dir, scope, None).await.unwrap().0
}

fn client(url: &str, key: &str, secret: &str, token: Option<String>) -> Client {
    let creds = Credentials::new(key, secret, token, None, "test");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(creds)
        .http_client(cove_store::https_client())
        .build();
    Client::from_conf(config)
}

fn scoped(url: &str, org: &str, exp: u64) -> Client {
    let c = cove_scoped_creds::mint_s3(SECRET, org, exp).unwrap();
    client(url, &c.access_key, &c.secret, Some(c.session_token))
}

async fn put(c: &Client, bucket: &str, key: &str) -> Result<(), String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"context"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("none").to_owned())
}

async fn get(c: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| e.code().unwrap_or("none").to_owned())?;
    Ok(out.body.collect().await.unwrap().into_bytes().to_vec())
}

fn hour() -> u64 {
    cove_scoped_creds::now_unix() + 3600
}

#[tokio::test]
async fn scoped_credentials_reach_their_own_prefix_only() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = server(dir.path()).await;
    let master = client(&s3.url, "cove", "cove-secret", None);
    master.create_bucket().bucket("other").send().await.unwrap();
    let b_key = format!("{ORG_B}/h/context.tar");
    put(&master, BUCKET, &b_key).await.unwrap();
    put(&master, "other", &format!("{ORG_A}/x")).await.unwrap();

    let a = scoped(&s3.url, ORG_A, hour());
    let a_key = format!("{ORG_A}/h1/context.tar");
    put(&a, BUCKET, &a_key).await.unwrap();
    assert_eq!(get(&a, BUCKET, &a_key).await.unwrap(), b"context");
    a.head_object()
        .bucket(BUCKET)
        .key(&a_key)
        .send()
        .await
        .unwrap();
    assert_eq!(get(&master, BUCKET, &a_key).await.unwrap(), b"context");

    assert_eq!(
        put(&a, BUCKET, &format!("{ORG_B}/h/evil")).await,
        Err("AccessDenied".into())
    );
    assert_eq!(get(&a, BUCKET, &b_key).await, Err("AccessDenied".into()));
    assert_eq!(
        get(&a, "other", &format!("{ORG_A}/x")).await,
        Err("AccessDenied".into())
    );
    assert_eq!(
        put(&a, "other", &format!("{ORG_A}/y")).await,
        Err("AccessDenied".into())
    );
    let buckets = a.list_buckets().send().await;
    assert_eq!(buckets.unwrap_err().code(), Some("AccessDenied"));

    let listed = a
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("{ORG_A}/"))
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec![a_key.as_str()]);
    for prefix in [None, Some(format!("{ORG_B}/"))] {
        let err = a
            .list_objects_v2()
            .bucket(BUCKET)
            .set_prefix(prefix)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("AccessDenied"));
    }
    s3.stop().await;
}

#[tokio::test]
async fn multipart_uploads_work_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = server(dir.path()).await;
    let a = scoped(&s3.url, ORG_A, hour());
    let key = format!("{ORG_A}/big/context.tar");
    let up = a
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = vec![7u8; 5 << 20];
    let mut parts = Vec::new();
    for n in 1..=2 {
        let out = a
            .upload_part()
            .bucket(BUCKET)
            .key(&key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
    }
    a.complete_multipart_upload()
        .bucket(BUCKET)
        .key(&key)
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(get(&a, BUCKET, &key).await.unwrap().len(), 10 << 20);
    let err = a
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(format!("{ORG_B}/big"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    s3.stop().await;
}

#[tokio::test]
async fn expired_or_forged_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = server(dir.path()).await;
    let key = format!("{ORG_A}/h/context.tar");
    let exp = cove_scoped_creds::now_unix() + 2;
    let short = scoped(&s3.url, ORG_A, exp);
    put(&short, BUCKET, &key).await.unwrap();
    while cove_scoped_creds::now_unix() < exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(put(&short, BUCKET, &key).await, Err("AccessDenied".into()));
    assert_eq!(get(&short, BUCKET, &key).await, Err("AccessDenied".into()));

    // Signed under another platform secret: the derived secret does not match.
    let other = cove_scoped_creds::mint_s3(b"another secret", ORG_A, hour()).unwrap();
    let forged = client(
        &s3.url,
        &other.access_key,
        &other.secret,
        Some(other.session_token.clone()),
    );
    assert_eq!(get(&forged, BUCKET, &key).await, Err("AccessDenied".into()));
    // A genuine key presented with a wrong secret: signature mismatch.
    let genuine = cove_scoped_creds::mint_s3(SECRET, ORG_A, hour()).unwrap();
    let wrong = client(
        &s3.url,
        &genuine.access_key,
        "0000",
        Some(genuine.session_token.clone()),
    );
    assert_eq!(
        get(&wrong, BUCKET, &key).await,
        Err("SignatureDoesNotMatch".into())
    );
    // A genuine key with another credential's session token.
    let mismatched = client(
        &s3.url,
        &genuine.access_key,
        &genuine.secret,
        Some(other.session_token),
    );
    assert_eq!(
        get(&mismatched, BUCKET, &key).await,
        Err("AccessDenied".into())
    );
    s3.stop().await;
}
