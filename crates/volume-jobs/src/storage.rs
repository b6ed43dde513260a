//! Where volumes live: the object storage the control plane signs with (Spin variables
//! `s3_endpoint`, `s3_bucket`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`).

use cove_edge::config::Settings;

#[derive(Clone, PartialEq, Eq)]
pub struct VolumeStorage {
    /// `scheme://host[:port]`, path-style requests; empty: no object storage (volumes answer 503).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for VolumeStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeStorage")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl VolumeStorage {
    /// Whether volumes can be stored at all (an endpoint, a bucket and credentials).
    pub fn configured(&self) -> bool {
        !self.endpoint.is_empty() && !self.bucket.is_empty() && !self.access_key_id.is_empty()
    }
}

impl Settings for VolumeStorage {
    const VARIABLES: &'static [&'static str] = &[
        "s3_endpoint",
        "s3_bucket",
        "aws_region",
        "aws_access_key_id",
        "aws_secret_access_key",
    ];

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let opt = |name: &str| get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
        let region = opt("aws_region");
        Self {
            endpoint: opt("s3_endpoint").trim_end_matches('/').to_owned(),
            bucket: opt("s3_bucket"),
            region: if region.is_empty() {
                "us-east-1".to_owned()
            } else {
                region
            },
            access_key_id: opt("aws_access_key_id"),
            secret_access_key: opt("aws_secret_access_key"),
        }
    }
}

impl Default for VolumeStorage {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}
