//! HS256 JWTs as an identity provider would issue them, for a control plane configured with the
//! same secret (`jwt_hs256_secret`; [`crate::harness::Harness`] and [`crate::cove::Cove`] use
//! [`TEST_SECRET`]).
//!
//! ```
//! use cove_testkit::jwt::{self, Claims, TEST_SECRET};
//! let alice = jwt::token("alice"); // sub, email alice@example.com (verified), name alice; 1 h
//! let bob = Claims::user("bob").email("b@corp.test").email_verified(false).sign(TEST_SECRET);
//! let expired = Claims::user("carol").expires_in(-600).sign(TEST_SECRET);
//! # let _ = (alice, bob, expired);
//! ```

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

/// The HS256 secret the testkit's control planes verify JWTs with.
pub const TEST_SECRET: &str = "cove-testkit-hs256-secret";

/// Lifetime of a token unless [`Claims::expires_in`] says otherwise.
pub const DEFAULT_TTL_SECS: i64 = 3600;

/// A JWT for `sub` with the usual claims ([`Claims::user`]) signed with [`TEST_SECRET`].
pub fn token(sub: &str) -> String {
    Claims::user(sub).sign(TEST_SECRET)
}

/// A JWT for `sub` signed with `secret`: `sub`, `iat`, `exp` (in an hour) and every member of
/// `claims` (a JSON object; its members win, so it can override `exp` too).
pub fn mint(secret: &str, sub: &str, claims: Value) -> String {
    let mut c = Claims::bare(sub);
    if let Value::Object(extra) = claims {
        c.claims.extend(extra);
    }
    c.sign(secret)
}

/// The claims of one token, built up and then signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    claims: Map<String, Value>,
}

impl Claims {
    /// `sub`, `iat` (now) and `exp` (in [`DEFAULT_TTL_SECS`]) only.
    pub fn bare(sub: &str) -> Self {
        let now = now();
        let mut claims = Map::new();
        claims.insert("sub".into(), sub.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + DEFAULT_TTL_SECS).into());
        Self { claims }
    }

    /// What the tests' identity provider issues: [`Claims::bare`] plus `email`
    /// (`<sub>@example.com`), verified (`email_verified: true`, which invitations require), and
    /// `name` (`sub`).
    pub fn user(sub: &str) -> Self {
        Self::bare(sub)
            .email(&format!("{sub}@example.com"))
            .email_verified(true)
            .name(sub)
    }

    pub fn email(self, email: &str) -> Self {
        self.claim("email", email)
    }

    pub fn name(self, name: &str) -> Self {
        self.claim("name", name)
    }

    pub fn email_verified(self, verified: bool) -> Self {
        self.claim("email_verified", verified)
    }

    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", aud)
    }

    /// `exp` = now + `secs` (negative: already expired).
    pub fn expires_in(self, secs: i64) -> Self {
        self.claim("exp", now() + secs)
    }

    /// Any claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// The claims as JSON.
    pub fn to_json(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// The compact HS256 token.
    pub fn sign(&self, secret: &str) -> String {
        let key =
            EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key accepts any secret");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &self.claims, &key)
            .expect("HS256 signing of a JSON object cannot fail")
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::json;

    fn decode(token: &str, secret: &str) -> Result<Value, jsonwebtoken::errors::Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        v.leeway = 0;
        let key = DecodingKey::from_secret(secret.as_bytes()).expect("an HMAC key");
        jsonwebtoken::decode::<Value>(token, &key, &v).map(|d| d.claims)
    }

    #[test]
    fn the_usual_claims_are_signed_hs256() {
        let t = token("alice");
        let header = jsonwebtoken::decode_header(&t).expect("header");
        assert_eq!(header.alg, Algorithm::HS256);
        let c = decode(&t, TEST_SECRET).expect("verifies with the test secret");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["email"], "alice@example.com");
        assert_eq!(c["email_verified"], true);
        assert_eq!(c["name"], "alice");
        let (iat, exp) = (
            c["iat"].as_i64().expect("iat"),
            c["exp"].as_i64().expect("exp"),
        );
        assert_eq!(exp - iat, DEFAULT_TTL_SECS);
        assert!((iat - now()).abs() < 5);
        assert!(decode(&t, "another-secret").is_err());
    }

    #[test]
    fn the_builder_sets_and_overrides_claims() {
        let c = Claims::user("bob")
            .email("b@corp.test")
            .name("Bob B")
            .email_verified(true)
            .issuer("https://issuer.test")
            .claim("org", "o1");
        let v = decode(&c.sign("s3"), "s3").expect("verifies");
        assert_eq!(v, c.to_json());
        assert_eq!(v["email"], "b@corp.test");
        assert_eq!(v["email_verified"], true);
        assert_eq!(v["iss"], "https://issuer.test");
        assert_eq!(v["org"], "o1");
    }

    #[test]
    fn expired_tokens_are_refused() {
        let t = Claims::user("carol").expires_in(-600).sign(TEST_SECRET);
        let e = decode(&t, TEST_SECRET).expect_err("expired");
        assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::ExpiredSignature);
    }

    #[test]
    fn mint_merges_claims_over_the_bare_ones() {
        let t = mint(
            "k",
            "dave",
            json!({"email": "d@x.test", "exp": 4_102_444_800_i64}),
        );
        let v = decode(&t, "k").expect("verifies");
        assert_eq!(v["sub"], "dave");
        assert_eq!(v["email"], "d@x.test");
        assert_eq!(v["exp"], 4_102_444_800_i64);
        assert!(v.get("name").is_none(), "bare: no name unless given");
    }
}
