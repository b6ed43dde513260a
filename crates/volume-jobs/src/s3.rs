//! The few S3 calls volumes need (path-style, SigV4-signed with the component's credentials,
//! sent through `cove_edge::outbound`, so the same code runs natively and inside Spin).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4::SigningParams;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::VolumeStorage;

/// Everything but RFC 3986 unreserved characters (and `/` in paths).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const PATH: &AsciiSet = &QUERY.remove(b'/');

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("object storage unreachable: {0}")]
    Unreachable(String),
    #[error("object storage answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

impl S3Error {
    fn no_such_bucket(&self) -> bool {
        matches!(self, Self::Status { status: 404, body } if body.contains("NoSuchBucket"))
    }
}

fn signing(e: impl std::fmt::Display) -> S3Error {
    S3Error::Signing(e.to_string())
}

/// A client for one bucket.
pub struct Bucket<'a> {
    pub storage: &'a VolumeStorage,
}

impl Bucket<'_> {
    fn url(&self, key: &str, query: &str) -> String {
        let s = self.storage;
        let mut url = format!("{}/{}", s.endpoint, s.bucket);
        if !key.is_empty() {
            url.push('/');
            url.push_str(&utf8_percent_encode(key, PATH).to_string());
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    fn signed(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<http::Request<Bytes>, S3Error> {
        let mut b = http::Request::builder().method(method.clone()).uri(url);
        if method == http::Method::PUT || method == http::Method::DELETE {
            // Spin's outbound HTTP streams bodies (an empty one too); S3 wants the length up
            // front (411 otherwise, also for a DELETE).
            b = b.header(http::header::CONTENT_LENGTH, body.len());
        }
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        let mut req = b.body(body).map_err(signing)?;
        let s = self.storage;
        let identity =
            Credentials::new(&s.access_key_id, &s.secret_access_key, None, None, "cove").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = SigningParams::builder()
            .identity(&identity)
            .region(&s.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(signing)?
            .into();
        let hdrs = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            hdrs,
            SignableBody::Bytes(req.body().as_ref()),
        )
        .map_err(signing)?;
        let (instructions, _) = sign(signable, &params).map_err(signing)?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    async fn call(
        &self,
        method: http::Method,
        key: &str,
        query: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Bytes, S3Error> {
        let url = self.url(key, query);
        let req = self.signed(method, &url, headers, body)?;
        let resp = cove_edge::outbound::send(req)
            .await
            .map_err(|e| S3Error::Unreachable(e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp.into_body());
        }
        Err(S3Error::Status {
            status: resp.status().as_u16(),
            body: String::from_utf8_lossy(resp.body())
                .chars()
                .take(300)
                .collect(),
        })
    }

    /// `PUT` an object; a missing bucket is created once first.
    pub async fn put(
        &self,
        key: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<(), S3Error> {
        let put = || self.call(http::Method::PUT, key, "", headers, body.clone());
        match put().await {
            Err(e) if e.no_such_bucket() => {
                self.call(http::Method::PUT, "", "", &[], Bytes::new())
                    .await?;
                put().await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// `DELETE` an object (S3 answers 204 also when there was none).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        match self
            .call(http::Method::DELETE, key, "", &[], Bytes::new())
            .await
        {
            Ok(_) => Ok(()),
            Err(S3Error::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// At most `max` keys under `prefix` (`ListObjectsV2`); a missing bucket has none.
    pub async fn list(&self, prefix: &str, max: u32) -> Result<Vec<String>, S3Error> {
        let query = format!(
            "list-type=2&max-keys={max}&prefix={}",
            utf8_percent_encode(prefix, QUERY)
        );
        let body = match self
            .call(http::Method::GET, "", &query, &[], Bytes::new())
            .await
        {
            Ok(b) => b,
            Err(e) if e.no_such_bucket() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(keys(&String::from_utf8_lossy(&body)))
    }
}

/// The `<Key>` values of a `ListBucketResult`, unescaped.
fn keys(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Key>") {
        let after = &rest[start + 5..];
        let Some(end) = after.find("</Key>") else {
            break;
        };
        out.push(unescape(&after[..end]));
        rest = &after[end + 6..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_read_and_unescaped() {
        let xml = "<ListBucketResult><Contents><Key>volumes/a/x&amp;y.txt</Key></Contents>\
                   <Contents><Key>volumes/a/b c</Key></Contents></ListBucketResult>";
        assert_eq!(keys(xml), vec!["volumes/a/x&y.txt", "volumes/a/b c"]);
        assert!(keys("<x/>").is_empty());
    }

    #[test]
    fn requests_are_path_style_and_signed_for_s3() {
        let storage = VolumeStorage {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "cove".into(),
            region: "us-east-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "SECRET".into(),
        };
        let b = Bucket { storage: &storage };
        let url = b.url("volumes/v 1/a+b", "");
        assert_eq!(url, "http://127.0.0.1:9000/cove/volumes/v%201/a%2Bb");
        let req = b
            .signed(http::Method::PUT, &url, &[], Bytes::from_static(b"x"))
            .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(auth.contains("/us-east-1/s3/aws4_request"), "{auth}");
        assert!(req.headers().contains_key("x-amz-content-sha256"));
        assert_eq!(req.headers()["content-length"], "1");
        let del = b
            .signed(http::Method::DELETE, &url, &[], Bytes::new())
            .unwrap();
        assert_eq!(del.headers()["content-length"], "0");
    }
}
