//! RS256 verification with a configured PEM public key and with a JWKS, end to end through
//! `authenticate` (which also provisions the user on first sight).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use cove_edge::config::EdgeConfig;
use cove_edge::{Credential, Env, auth};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const PRIVATE: &str = include_str!("fixtures/test-rs256-private.pem");
const PUBLIC: &str = include_str!("fixtures/test-rs256-public.pem");
const JWKS: &str = include_str!("fixtures/test-jwks.json");

fn token(kid: Option<&str>, sub: &str, iss: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 300;
    let claims = serde_json::json!({"sub": sub, "exp": exp, "iss": iss, "email": "r@example.com", "name": "R"});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn env_with(vars: &[(&str, &str)]) -> Env {
    let store = cove_testkit::store().await;
    let table = store.table().to_owned();
    let endpoint = cove_testkit::dynamodb_endpoint();
    let mut all: Vec<(String, String)> = vec![
        ("dynamodb_endpoint".into(), endpoint),
        ("dynamodb_table".into(), table),
        ("aws_access_key_id".into(), "x".into()),
        ("aws_secret_access_key".into(), "x".into()),
    ];
    all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let cfg = EdgeConfig::from_lookup(|n| all.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
        .unwrap();
    Env::new(cfg)
}

fn req(token: &str) -> cove_edge::Request {
    http::Request::get("/api/api-keys")
        .header("authorization", format!("Bearer {token}"))
        .body(Bytes::new())
        .unwrap()
}

#[tokio::test]
async fn rs256_with_a_pem_key_and_issuer() {
    let env = env_with(&[
        ("jwt_rs256_public_key", PUBLIC),
        ("jwt_issuer", "https://issuer.test"),
    ])
    .await;
    let ctx = auth::authenticate(&env, &req(&token(None, "rs-user", "https://issuer.test")))
        .await
        .unwrap();
    assert_eq!(ctx.user_id.as_str(), "rs-user");
    assert_eq!(ctx.credential, Credential::Jwt);
    assert!(
        ctx.is_owner(),
        "first sight provisions a personal org the user owns"
    );
    let wrong_iss =
        auth::authenticate(&env, &req(&token(None, "rs-user", "https://evil.test"))).await;
    assert_eq!(wrong_iss.unwrap_err().status, 401);
}

#[tokio::test]
async fn rs256_with_a_jwks_selects_by_kid() {
    let env = env_with(&[("jwt_jwks", JWKS)]).await;
    let ctx = auth::authenticate(&env, &req(&token(Some("test-key-1"), "jwks-user", "x")))
        .await
        .unwrap();
    assert_eq!(ctx.user_id.as_str(), "jwks-user");
    let unknown_kid =
        auth::authenticate(&env, &req(&token(Some("other-kid"), "jwks-user", "x"))).await;
    assert_eq!(unknown_kid.unwrap_err().status, 401);
    // HS256 is refused when no secret is configured, even with a valid-looking token.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "x", "exp": 4102444800u64}),
        &EncodingKey::from_secret(b"guess").unwrap(),
    )
    .unwrap();
    assert_eq!(
        auth::authenticate(&env, &req(&hs))
            .await
            .unwrap_err()
            .status,
        401
    );
}

#[test]
fn broken_key_material_is_a_config_error() {
    let lookup = |vals: &'static [(&'static str, &'static str)]| {
        move |n: &str| {
            vals.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let base: &[(&str, &str)] = &[
        ("dynamodb_endpoint", "http://127.0.0.1:1"),
        ("aws_access_key_id", "x"),
        ("aws_secret_access_key", "x"),
        ("jwt_jwks", "{not json"),
    ];
    assert!(EdgeConfig::from_lookup(lookup(base)).is_err());
    let missing: &[(&str, &str)] = &[("aws_access_key_id", "x")];
    assert!(EdgeConfig::from_lookup(lookup(missing)).is_err());
}
