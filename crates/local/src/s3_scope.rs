//! Who may do what on the embedded S3 server: the master credentials (what components sign
//! with) everything; scoped credentials from `object-storage/push-access`
//! (`cove_scoped_creds::S3Credential`) only object operations under `{orgId}/` in the configured
//! bucket, and listings whose prefix is under it. Everything else, an expired or forged key
//! included, is 403 `AccessDenied`.

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{Credentials, S3Auth, SecretKey};
use s3s::dto::{ListMultipartUploadsInput, ListObjectsInput, ListObjectsV2Input};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use cove_scoped_creds::{Claims, S3_ACCESS_KEY_PREFIX, S3Credential};

/// The secrets the embedded S3 server checks against.
#[derive(Clone)]
pub struct S3Scope {
    pub master_access_key: String,
    pub master_secret_key: String,
    /// `scoped_credentials_secret`.
    pub platform_secret: Vec<u8>,
    /// The only bucket scoped credentials may touch.
    pub bucket: String,
}

/// Object operations a scoped credential may perform on a key of its prefix.
const OBJECT_OPS: [&str; 9] = [
    "GetObject",
    "HeadObject",
    "PutObject",
    "DeleteObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
];

/// Bucket operations a scoped credential may perform (listings are checked for their prefix).
const BUCKET_OPS: [&str; 5] = [
    "ListObjects",
    "ListObjectsV2",
    "ListMultipartUploads",
    "HeadBucket",
    "GetBucketLocation",
];

impl S3Scope {
    /// The claims of a scoped key; `None` for the master key; an error for anything else.
    fn claims(&self, access_key: &str) -> S3Result<Option<Claims>> {
        if access_key == self.master_access_key {
            return Ok(None);
        }
        S3Credential::parse(
            &self.platform_secret,
            access_key,
            cove_scoped_creds::now_unix(),
        )
        .map(Some)
        .map_err(|e| {
            tracing::info!(error = %e, "embedded S3: scoped credential refused");
            s3_error!(AccessDenied, "{e}")
        })
    }

    fn check_prefix(&self, creds: Option<&Credentials>, prefix: Option<&str>) -> S3Result<()> {
        let creds = creds.ok_or_else(|| s3_error!(AccessDenied, "Signature is required"))?;
        match self.claims(&creds.access_key)? {
            None => Ok(()),
            Some(claims) if prefix.is_some_and(|p| p.starts_with(&claims.scope)) => Ok(()),
            Some(claims) => Err(s3_error!(
                AccessDenied,
                "listing is limited to the prefix {}",
                claims.scope
            )),
        }
    }

    fn check_path(&self, claims: &Claims, op: &str, path: &S3Path) -> S3Result<()> {
        let allowed = match path {
            S3Path::Root => false,
            S3Path::Bucket { bucket } => **bucket == *self.bucket && BUCKET_OPS.contains(&op),
            S3Path::Object { bucket, key } => {
                OBJECT_OPS.contains(&op) && S3Credential::allows(claims, &self.bucket, bucket, key)
            }
        };
        if allowed {
            Ok(())
        } else {
            tracing::info!(op, org = claims.org, ?path, "embedded S3: out of scope");
            Err(s3_error!(
                AccessDenied,
                "these credentials cover only {}/{}",
                self.bucket,
                claims.scope
            ))
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for S3Scope {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.master_access_key {
            return Ok(SecretKey::from(self.master_secret_key.clone()));
        }
        if !access_key.starts_with(S3_ACCESS_KEY_PREFIX) {
            return Err(s3_error!(InvalidAccessKeyId));
        }
        self.claims(access_key)?;
        cove_scoped_creds::s3_secret_for(&self.platform_secret, access_key)
            .map(SecretKey::from)
            .map_err(|e| s3_error!(AccessDenied, "{e}"))
    }
}

#[async_trait::async_trait]
impl S3Access for S3Scope {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let creds = cx
            .credentials()
            .ok_or_else(|| s3_error!(AccessDenied, "Signature is required"))?;
        let Some(claims) = self.claims(&creds.access_key)? else {
            return Ok(());
        };
        let token = cx
            .headers()
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok());
        if token.is_some_and(|t| Some(t) != creds.access_key.strip_prefix(S3_ACCESS_KEY_PREFIX)) {
            return Err(s3_error!(
                AccessDenied,
                "session token does not match the access key"
            ));
        }
        let op = cx.s3_op().name().to_owned();
        self.check_path(&claims, &op, cx.s3_path())
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        self.check_prefix(req.credentials.as_ref(), req.input.prefix.as_deref())
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        self.check_prefix(req.credentials.as_ref(), req.input.prefix.as_deref())
    }

    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        self.check_prefix(req.credentials.as_ref(), req.input.prefix.as_deref())
    }
}
