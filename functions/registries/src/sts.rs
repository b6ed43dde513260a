//! Production object-storage credentials: STS `AssumeRole` of `object_storage_sts_role_arn` with
//! a session policy that limits them to `arn:aws:s3:::{bucket}/{orgId}/*` (and listing the
//! bucket under that prefix), signed with SigV4 under the component's AWS credentials.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use bytes::Bytes;
use cove_api_types::ApiError;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::settings::RegistrySettings;

/// What STS answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// The session policy: objects under `{orgId}/` of the bucket, and listing that prefix only.
pub fn session_policy(bucket: &str, org: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"
                ],
                "Resource": [format!("arn:aws:s3:::{bucket}/{org}/*")]
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}")],
                "Condition": {"StringLike": {"s3:prefix": [format!("{org}/*")]}}
            }
        ]
    })
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The form body of the `AssumeRole` call.
pub fn assume_role_body(s: &RegistrySettings, role: &str, org: &str) -> String {
    let session = format!("cove-{}", org.chars().take(32).collect::<String>());
    let duration = s.ttl_secs.clamp(900, 43_200);
    format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}&DurationSeconds={duration}&Policy={}",
        enc(role),
        enc(&session),
        enc(&session_policy(&s.s3_bucket, org).to_string())
    )
}

fn failed(detail: impl std::fmt::Display) -> ApiError {
    tracing::error!(%detail, "STS AssumeRole failed");
    ApiError::service_unavailable("Object storage credentials are unavailable")
}

fn signed_request(s: &RegistrySettings, body: String) -> Result<http::Request<Bytes>, ApiError> {
    let url = format!("https://sts.{}.amazonaws.com/", s.region);
    let mut req = http::Request::post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body))
        .map_err(failed)?;
    let identity = Credentials::new(
        &s.aws_access_key_id,
        &s.aws_secret_access_key,
        None,
        None,
        "cove",
    )
    .into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&s.region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(failed)?
        .into();
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers,
        SignableBody::Bytes(req.body().as_ref()),
    )
    .map_err(failed)?;
    let (instructions, _) = sign(signable, &params).map_err(failed)?.into_parts();
    instructions.apply_to_request_http1x(&mut req);
    Ok(req)
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// Parses the `AssumeRoleResponse` XML.
pub fn parse_response(xml: &str) -> Option<StsCredentials> {
    Some(StsCredentials {
        access_key_id: tag(xml, "AccessKeyId")?.to_owned(),
        secret_access_key: tag(xml, "SecretAccessKey")?.to_owned(),
        session_token: tag(xml, "SessionToken")?.to_owned(),
    })
}

/// Calls STS `AssumeRole` for `org`.
pub async fn assume_role(
    s: &RegistrySettings,
    role: &str,
    org: &str,
) -> Result<StsCredentials, ApiError> {
    let req = signed_request(s, assume_role_body(s, role, org))?;
    let resp = cove_edge::outbound::send(req).await.map_err(failed)?;
    let text = String::from_utf8_lossy(resp.body());
    if !resp.status().is_success() {
        return Err(failed(format!("{}: {text}", resp.status())));
    }
    parse_response(&text).ok_or_else(|| failed("unreadable AssumeRole answer"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cove_edge::config::Settings;

    #[test]
    fn the_session_policy_covers_the_org_prefix_only() {
        let p = session_policy("cove", "org-a");
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[0]["Resource"][0], "arn:aws:s3:::cove/org-a/*");
        assert!(
            st[0]["Action"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a.as_str().unwrap().starts_with("s3:"))
        );
        assert!(!st[0]["Action"].as_array().unwrap().contains(&"s3:*".into()));
        assert_eq!(st[1]["Resource"][0], "arn:aws:s3:::cove");
        assert_eq!(st[1]["Condition"]["StringLike"]["s3:prefix"][0], "org-a/*");
        assert!(!p.to_string().contains("org-b"));
    }

    #[test]
    fn the_assume_role_call_is_signed_and_carries_the_policy() {
        let s = RegistrySettings::from_lookup(|k| match k {
            "aws_access_key_id" => Some("AKID".into()),
            "aws_secret_access_key" => Some("SECRET".into()),
            "aws_region" => Some("eu-west-1".into()),
            _ => None,
        });
        let body = assume_role_body(&s, "arn:aws:iam::1:role/r", "org-a");
        assert!(body.contains("Action=AssumeRole"));
        assert!(body.contains("DurationSeconds=3600"));
        assert!(body.contains(&enc("arn:aws:s3:::cove/org-a/*")));
        let req = signed_request(&s, body).unwrap();
        assert_eq!(req.uri(), "https://sts.eu-west-1.amazonaws.com/");
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"));
        assert!(auth.contains("/eu-west-1/sts/aws4_request"));
    }

    #[test]
    fn sts_answers_are_parsed() {
        let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>\
            <SecretAccessKey>s3cr3t</SecretAccessKey><SessionToken>tok</SessionToken>\
            <Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let c = parse_response(xml).unwrap();
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(c.secret_access_key, "s3cr3t");
        assert_eq!(c.session_token, "tok");
        assert_eq!(parse_response("<x/>"), None);
    }
}
