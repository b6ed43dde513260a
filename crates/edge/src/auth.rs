//! Authentication: `Authorization: Bearer` carries a Cove API key or a JWT (CONTRACT §1).
//!
//! * API key: `sha256(key)` → the key's pointer row (one `GetItem`); expired keys get 401; the key is
//!   bound to its organization; use is recorded in `lastUsedAt` (at most every few seconds).
//! * JWT: HS256 with the `jwt_hs256_secret` variable, or RS256 with a configured PEM key / JWKS.
//!   A user seen for the first time is provisioned with a personal organization. The organization is
//!   `X-Daytona-Organization-ID`, else the user's personal organization. The token's `email`
//!   claim counts as the caller's address only when its standard OIDC claim `email_verified` is
//!   `true` ([`AuthContext::verified_email`]; invitations are matched on it).

use std::collections::BTreeSet;

use cove_api_types::ApiError;
use cove_api_types::ids::{OrganizationId, UserId};
use cove_api_types::permissions::Permission;
use cove_store::api_keys::ApiKeyAuth;
use cove_store::keys;
use cove_store::memberships::{MembershipRecord, OrgRole};
use cove_store::users::{NewUser, SystemRole};
use http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::config::{Env, JwtConfig};
use crate::store_error::IntoApi;
use crate::web::Request;

/// The organization header the SDK sends in JWT mode.
pub const ORG_HEADER: &str = "x-daytona-organization-id";

/// Minimum seconds between two `lastUsedAt` writes for one key.
const TOUCH_INTERVAL_SECS: i64 = 5;

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user API key, with its name, permissions and stored view.
    ApiKey {
        name: String,
        permissions: BTreeSet<Permission>,
        key: Box<ApiKeyAuth>,
    },
    /// A verified JWT.
    Jwt,
}

/// Who is calling, in which organization, with which rights.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub user_id: UserId,
    pub organization_id: OrganizationId,
    pub org_role: OrgRole,
    /// Known when the user row was read (JWT); see [`AuthContext::is_system_admin`].
    system_admin: Option<bool>,
    /// Permissions of the member's assigned roles (JWT members; owners hold every permission).
    role_permissions: BTreeSet<Permission>,
    pub credential: Credential,
    /// The email address the credential vouches for: a JWT's `email` claim (trimmed,
    /// lower-cased) and whether its `email_verified` claim is `true`. API keys vouch for none.
    pub email: Option<TokenEmail>,
}

/// An email address as the identity provider stated it in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEmail {
    pub address: String,
    pub verified: bool,
}

impl TokenEmail {
    fn from_claims(claims: &Claims) -> Option<Self> {
        let address = claims.email.as_deref()?.trim().to_lowercase();
        (!address.is_empty()).then(|| Self {
            address,
            verified: claims.email_verified == Some(true),
        })
    }
}

impl AuthContext {
    /// The caller's email address when the identity provider verified it (the token's
    /// `email_verified` claim); 403 otherwise. Invitations are sent to and matched on it.
    pub fn verified_email(&self) -> Result<&str, ApiError> {
        match &self.email {
            Some(e) if e.verified => Ok(&e.address),
            _ => Err(ApiError::forbidden(
                "A verified email address is required (the token's email_verified claim must be true)",
            )),
        }
    }

    /// Whether the caller holds `p` in its organization.
    ///
    /// An API key holds exactly the permissions it was created with. A JWT caller who owns the
    /// organization holds every permission; a member holds those of its assigned roles.
    pub fn has(&self, p: Permission) -> bool {
        match &self.credential {
            Credential::ApiKey { permissions, .. } => permissions.contains(&p),
            Credential::Jwt => {
                self.org_role == OrgRole::Owner || self.role_permissions.contains(&p)
            }
        }
    }

    pub fn is_jwt(&self) -> bool {
        self.credential == Credential::Jwt
    }

    /// The same caller in organization `org`: itself when `org` is its context, else (JWT only)
    /// its membership there. Not a member (or an API key of another organization): 403.
    pub async fn in_org(&self, env: &Env, org: &OrganizationId) -> Result<AuthContext, ApiError> {
        if *org == self.organization_id {
            return Ok(self.clone());
        }
        if !self.is_jwt() {
            return Err(invalid_context());
        }
        let member = env
            .store
            .memberships()
            .get(org, &self.user_id)
            .await
            .api()?
            .ok_or_else(invalid_context)?;
        Ok(AuthContext {
            user_id: self.user_id.clone(),
            organization_id: org.clone(),
            org_role: member.role,
            system_admin: self.system_admin,
            role_permissions: role_permissions(env, &member).await?,
            credential: Credential::Jwt,
            email: self.email.clone(),
        })
    }

    /// Whether the caller is a system admin (reads the user row when authentication did not).
    pub async fn is_system_admin(&self, env: &Env) -> Result<bool, ApiError> {
        if let Some(known) = self.system_admin {
            return Ok(known);
        }
        Ok(env
            .store
            .users()
            .get(&self.user_id)
            .await
            .api()?
            .is_some_and(|u| u.role == SystemRole::Admin))
    }

    pub fn is_owner(&self) -> bool {
        self.org_role == OrgRole::Owner
    }

    /// Permissions the caller may grant to a new API key.
    pub fn grantable(&self) -> BTreeSet<Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| self.has(*p))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn org_header(req: &Request) -> Option<&str> {
    req.headers()
        .get(ORG_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn invalid_context() -> ApiError {
    ApiError::forbidden("Invalid authentication context")
}

/// Authenticates the request as a user (API key or JWT).
pub async fn authenticate(env: &Env, req: &Request) -> Result<AuthContext, ApiError> {
    let token = bearer(req).ok_or_else(ApiError::invalid_credentials)?;
    if keys::looks_like_key(token) {
        authenticate_key(env, req, token).await
    } else if token.split('.').count() == 3 {
        authenticate_jwt(env, req, token).await
    } else {
        Err(ApiError::invalid_credentials())
    }
}

async fn authenticate_key(env: &Env, req: &Request, token: &str) -> Result<AuthContext, ApiError> {
    let hash = keys::hash(token);
    let auth = env
        .store
        .api_keys()
        .get_by_hash(&hash)
        .await
        .api()?
        .ok_or_else(ApiError::invalid_credentials)?;
    let now = time::OffsetDateTime::now_utc();
    if let Some(exp) = auth.expires_at.as_deref() {
        let expired = cove_api_types::time::parse_rfc3339(exp).is_none_or(|t| t <= now);
        if expired {
            return Err(ApiError::unauthorized("This API key has expired"));
        }
    }
    if let Some(h) = org_header(req)
        && h != auth.organization_id.as_str()
    {
        return Err(invalid_context());
    }
    let member = env
        .store
        .memberships()
        .get(&auth.organization_id, &auth.user_id)
        .await
        .api()?
        .ok_or_else(invalid_context)?;
    let now = cove_api_types::time::format_rfc3339(now);
    if let Err(e) = env
        .store
        .api_keys()
        .touch(&auth, &hash, &now, TOUCH_INTERVAL_SECS)
        .await
    {
        // Recording the use is best effort; the request itself is fine.
        tracing::warn!(error = %e, key = %auth.name, "could not record API key use");
    }
    let permissions = auth
        .permissions
        .iter()
        .filter_map(|p| Permission::parse(p))
        .collect();
    Ok(AuthContext {
        user_id: auth.user_id.clone(),
        organization_id: auth.organization_id.clone(),
        org_role: member.role,
        system_admin: None,
        role_permissions: BTreeSet::new(),
        credential: Credential::ApiKey {
            name: auth.name.clone(),
            permissions,
            key: Box::new(auth),
        },
        email: None,
    })
}

async fn authenticate_jwt(env: &Env, req: &Request, token: &str) -> Result<AuthContext, ApiError> {
    let claims = verify_jwt(&env.jwt, token)?;
    let email = TokenEmail::from_claims(&claims);
    let user_id = UserId::parse(claims.sub).map_err(|_| ApiError::invalid_credentials())?;
    let user = env
        .store
        .users()
        .get_or_provision(NewUser {
            id: user_id.clone(),
            name: claims.name.unwrap_or_default(),
            email: claims.email.unwrap_or_default(),
            email_verified: claims.email_verified.unwrap_or(false),
            role: SystemRole::User,
        })
        .await
        .api()?;
    let organization_id = match org_header(req) {
        Some(h) => OrganizationId::parse(h).map_err(|_| invalid_context())?,
        None => user.personal_organization_id.clone(),
    };
    let member = env
        .store
        .memberships()
        .get(&organization_id, &user_id)
        .await
        .api()?
        .ok_or_else(invalid_context)?;
    Ok(AuthContext {
        user_id,
        organization_id,
        org_role: member.role,
        system_admin: Some(user.role == SystemRole::Admin),
        role_permissions: role_permissions(env, &member).await?,
        credential: Credential::Jwt,
        email,
    })
}

/// The permissions a member holds through its assigned roles (none to read for owners, who hold
/// everything). Roles deleted since they were assigned are skipped.
async fn role_permissions(
    env: &Env,
    member: &MembershipRecord,
) -> Result<BTreeSet<Permission>, ApiError> {
    let mut out = BTreeSet::new();
    if member.role == OrgRole::Owner {
        return Ok(out);
    }
    for id in &member.assigned_role_ids {
        if let Some(role) = env
            .store
            .roles()
            .get(&member.organization_id, id)
            .await
            .api()?
        {
            out.extend(role.permissions.iter().filter_map(|p| Permission::parse(p)));
        }
    }
    Ok(out)
}

fn verify_jwt(cfg: &JwtConfig, token: &str) -> Result<Claims, ApiError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::invalid_credentials())?;
    let key = match header.alg {
        Algorithm::HS256 => cfg
            .hs256_secret
            .as_ref()
            .and_then(|s| jsonwebtoken::DecodingKey::from_secret(s.as_bytes()).ok()),
        Algorithm::RS256 => cfg
            .rs256_keys
            .iter()
            .find(|(kid, _)| kid.is_none() || header.kid.is_none() || *kid == header.kid)
            .map(|(_, k)| k.clone()),
        _ => None,
    }
    .ok_or_else(ApiError::invalid_credentials)?;
    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims(&["exp", "sub"]);
    match &cfg.audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    if let Some(iss) = &cfg.issuer {
        validation.set_issuer(&[iss]);
    }
    jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| {
            tracing::debug!(error = %e, "JWT rejected");
            ApiError::invalid_credentials()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JwtConfig {
        JwtConfig {
            hs256_secret: Some("s3cret".into()),
            ..Default::default()
        }
    }

    fn mint(secret: &str, exp_offset: i64, sub: &str) -> String {
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + exp_offset;
        let claims = serde_json::json!({"sub": sub, "exp": exp, "email": "a@b.c", "name": "A"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn only_a_true_email_verified_claim_verifies_the_email() {
        let claims = |v: serde_json::Value| serde_json::from_value::<Claims>(v).unwrap();
        let e = TokenEmail::from_claims(&claims(
            serde_json::json!({"sub": "u", "email": " A@B.Test ", "email_verified": true}),
        ));
        assert_eq!(
            e,
            Some(TokenEmail {
                address: "a@b.test".into(),
                verified: true
            })
        );
        for unverified in [
            serde_json::json!({"sub": "u", "email": "a@b.test"}),
            serde_json::json!({"sub": "u", "email": "a@b.test", "email_verified": false}),
        ] {
            assert_eq!(
                TokenEmail::from_claims(&claims(unverified)).map(|e| e.verified),
                Some(false)
            );
        }
        let none = serde_json::json!({"sub": "u", "email": " ", "email_verified": true});
        assert_eq!(TokenEmail::from_claims(&claims(none)), None);
    }

    #[test]
    fn hs256_tokens_are_verified() {
        assert_eq!(
            verify_jwt(&cfg(), &mint("s3cret", 60, "u1")).unwrap().sub,
            "u1"
        );
        assert_eq!(
            verify_jwt(&cfg(), &mint("other", 60, "u1"))
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            verify_jwt(&cfg(), &mint("s3cret", -120, "u1"))
                .unwrap_err()
                .status,
            401,
            "expired"
        );
        assert_eq!(
            verify_jwt(&JwtConfig::default(), &mint("s3cret", 60, "u1"))
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(verify_jwt(&cfg(), "a.b.c").unwrap_err().status, 401);
    }
}
