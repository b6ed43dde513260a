//! Pure rules: what a create body may ask for (Daytona's validation, CONTRACT §5) and the list
//! query. No I/O here.

use cove_api_types::ApiError;
use cove_api_types::snapshots::CreateSnapshot;
use cove_store::orgs::OrgQuota;

/// Largest Dockerfile accepted in `buildInfo.dockerfileContent`.
pub const MAX_DOCKERFILE_BYTES: usize = 64 * 1024;

/// Most context hashes a build may list.
pub const MAX_CONTEXT_HASHES: usize = 100;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// What the snapshot is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Image(String),
    Build {
        dockerfile: String,
        context_hashes: Vec<String>,
    },
}

/// A valid create body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePlan {
    pub name: String,
    pub source: Source,
    pub entrypoint: Option<Vec<String>>,
    pub cpu: i64,
    pub mem: i64,
    pub disk: i64,
    pub region: String,
}

/// One path component of a repository: lowercase alphanumerics separated by `.`, `_`, `__` or
/// runs of `-` (the distribution reference grammar).
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    c.split(['.', '_', '-']).all(|part| part.bytes().all(alnum))
        && !c.contains("..")
        && !c.contains("___")
}

/// A registry host (`host`, `host:port`, `localhost`): the first component when it has a `.`
/// or a `:` or is `localhost`.
fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    port_ok && host_ok
}

fn valid_repository(repo: &str) -> bool {
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            if !valid_host(first) {
                return false;
            }
            parts.remove(0);
        }
    }
    !parts.is_empty() && parts.iter().all(|p| valid_component(p))
}

const IMAGE_FORMAT: &str = "Invalid image name format. Must be lowercase, may contain digits, dots, dashes, and single slashes between components";

/// Daytona's image rules: a digest (`@sha256:<64 hex>`) or a tag is required, `:latest` is
/// refused, the repository is lowercase.
pub fn validate_image_name(image: &str) -> Result<(), ApiError> {
    if let Some((repo, digest)) = image.split_once("@sha256:") {
        let hex_ok = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_ok || repo.is_empty() {
            return Err(bad(
                "Invalid digest format. Must be image@sha256:64_hex_characters",
            ));
        }
        if !valid_repository(repo) {
            return Err(bad(IMAGE_FORMAT));
        }
        return Ok(());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last.rsplit_once(':') else {
        return Err(bad(
            "Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)",
        ));
    };
    if tag == "latest" {
        return Err(bad("Images with tag \":latest\" are not allowed"));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-']);
    if !tag_ok {
        return Err(bad(
            "Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)",
        ));
    }
    let repo = &image[..image.len() - tag.len() - 1];
    if !valid_repository(repo) {
        return Err(bad(IMAGE_FORMAT));
    }
    Ok(())
}

/// Snapshot names (Daytona's): components of letters, digits, `_`, `.`, `-` and `:` separated by
/// single slashes, optionally ending in a digest `@sha256:<64 hex>`; at most 255 characters.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let (base, digest) = match name.split_once("@sha256:") {
        Some((b, d)) => (b, Some(d)),
        None => (name, None),
    };
    let digest_ok = digest.is_none_or(|d| {
        d.len() == 64
            && d.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    let ok = name.len() <= 255
        && digest_ok
        && base.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'))
        });
    if ok {
        Ok(())
    } else {
        Err(bad(
            "Invalid snapshot name format. May contain letters, digits, dots, colons, and dashes",
        ))
    }
}

fn source(body: &CreateSnapshot) -> Result<Source, ApiError> {
    let image = body
        .image_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match (image, &body.build_info) {
        (Some(_), Some(_)) => Err(bad("Cannot specify both imageName and buildInfo")),
        (None, None) => Err(bad("Must specify either imageName or buildInfo")),
        (Some(image), None) => {
            validate_image_name(image)?;
            Ok(Source::Image(image.to_owned()))
        }
        (None, Some(b)) => {
            if b.dockerfile_content.trim().is_empty() {
                return Err(bad("dockerfileContent must not be empty"));
            }
            if b.dockerfile_content.len() > MAX_DOCKERFILE_BYTES {
                return Err(bad(format!(
                    "Dockerfile content exceeds the maximum size of {MAX_DOCKERFILE_BYTES} bytes"
                )));
            }
            let hashes = b.context_hashes.clone().unwrap_or_default();
            validate_hashes(&hashes)?;
            Ok(Source::Build {
                dockerfile: b.dockerfile_content.clone(),
                context_hashes: hashes,
            })
        }
    }
}

/// Context hashes name S3 keys `{orgId}/{hash}/context.tar`: hex or alphanumerics only.
fn validate_hashes(hashes: &[String]) -> Result<(), ApiError> {
    if hashes.len() > MAX_CONTEXT_HASHES {
        return Err(bad(format!(
            "At most {MAX_CONTEXT_HASHES} context hashes are allowed"
        )));
    }
    for h in hashes {
        let ok = !h.is_empty() && h.len() <= 128 && h.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(bad(format!("Invalid context hash {h:?}")));
        }
    }
    Ok(())
}

/// A size: positive (400), within the organization's per-sandbox limit (403, Daytona's
/// wording: `unit` is `""` for CPUs, `"GB"` for memory and disk).
fn size(field: &str, unit: &str, v: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let v = v.unwrap_or(default);
    if v < 1 {
        return Err(bad(format!("{field} must be a positive integer")));
    }
    if v > max {
        return Err(ApiError::forbidden(format!(
            "{field} request {v}{unit} exceeds maximum allowed per sandbox ({max}{unit})."
        )));
    }
    Ok(v)
}

/// Validates a create body against Daytona's rules and the organization's per-sandbox limits.
pub fn plan_create(body: &CreateSnapshot, quota: &OrgQuota) -> Result<CreatePlan, ApiError> {
    validate_name(&body.name)?;
    let source = source(body)?;
    if body.gpu.unwrap_or(0) != 0 || body.gpu_type.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(bad("GPU snapshots are not available"));
    }
    if let Some(c) = body.sandbox_class.as_deref()
        && c != "container"
    {
        return Err(bad(format!("Sandbox class {c} is not available")));
    }
    Ok(CreatePlan {
        name: body.name.clone(),
        source,
        // Blank entries are dropped; none left means "the image's own".
        entrypoint: body
            .entrypoint
            .as_ref()
            .map(|e| {
                e.iter()
                    .filter(|s| !s.trim().is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|e| !e.is_empty()),
        cpu: size("CPU", "", body.cpu, 1, quota.max_cpu_per_sandbox)?,
        mem: size("Memory", "GB", body.memory, 1, quota.max_memory_per_sandbox)?,
        disk: size("Disk", "GB", body.disk, 3, quota.max_disk_per_sandbox)?,
        region: body
            .region_id
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "us".to_owned()),
    })
}

/// What `GET /snapshots` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Name,
    State,
    LastUsedAt,
    CreatedAt,
}

/// The list query: 1-based page, 1..=200 per page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub page: usize,
    pub limit: usize,
    pub sort: SortField,
    pub descending: bool,
    pub name: Option<String>,
}

fn number(raw: Option<&str>, field: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    // The generated clients send `number`s: `2` or `2.0`.
    let v: f64 = raw
        .parse()
        .map_err(|_| bad(format!("{field} must be a number")))?;
    if v.fract() != 0.0 || v < 1.0 || v > max as f64 {
        return Err(bad(format!("{field} must be an integer from 1 to {max}")));
    }
    Ok(v as usize)
}

/// Parses `page`, `limit`, `sort`, `order`, `name` (values as the request carries them).
pub fn list_query(
    page: Option<&str>,
    limit: Option<&str>,
    sort: Option<&str>,
    order: Option<&str>,
    name: Option<String>,
) -> Result<ListQuery, ApiError> {
    let sort = match sort.unwrap_or("lastUsedAt") {
        "name" => SortField::Name,
        "state" => SortField::State,
        "lastUsedAt" => SortField::LastUsedAt,
        "createdAt" => SortField::CreatedAt,
        other => return Err(bad(format!("Invalid sort field {other:?}"))),
    };
    let descending = match order.unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => return Err(bad(format!("Invalid order {other:?}"))),
    };
    Ok(ListQuery {
        page: number(page, "page", 1, usize::MAX >> 11)?,
        limit: number(limit, "limit", 100, 200)?,
        sort,
        descending,
        name: name.filter(|n| !n.trim().is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> CreateSnapshot {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn image_names_follow_daytona() {
        for ok in [
            "python:3.12-slim",
            "ubuntu:22.04",
            "127.0.0.1:5000/org/img:v1",
            "ghcr.io/a/b-c_d:1.0",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(validate_image_name(ok).is_ok(), "{ok}");
        }
        let msg = |s| validate_image_name(s).unwrap_err().message;
        assert!(msg("python:latest").contains(":latest"));
        assert!(msg("python").contains("must include a tag"));
        assert!(msg("127.0.0.1:5000/python").contains("must include a tag"));
        assert!(msg("Python:3").contains("lowercase"));
        assert!(msg("python:").contains("must include a tag"));
        assert!(msg("a//b:1").contains("lowercase"));
        assert!(msg("alpine@sha256:abc").contains("Invalid digest format"));
        assert!(validate_name("my/snap:1.0").is_ok());
        assert!(validate_name("a//b").is_err());
        assert!(validate_name("a b").is_err());
    }

    #[test]
    fn create_bodies() {
        let q = OrgQuota::default();
        let p = plan_create(
            &body(serde_json::json!({"name": "s", "imageName": "a:1"})),
            &q,
        )
        .unwrap();
        assert_eq!((p.cpu, p.mem, p.disk, p.region.as_str()), (1, 1, 3, "us"));
        let e = |v| plan_create(&body(v), &q).unwrap_err().message;
        assert!(e(serde_json::json!({"name": "s"})).contains("either"));
        assert!(
            e(serde_json::json!({"name": "s", "imageName": "a:1", "buildInfo": {"dockerfileContent": "FROM a:1"}}))
                .contains("both")
        );
        assert!(e(serde_json::json!({"name": "a b", "imageName": "a:1"})).contains("name"));
        let err = plan_create(
            &body(serde_json::json!({"name": "s", "imageName": "a:1", "cpu": 99})),
            &q,
        )
        .unwrap_err();
        assert_eq!(err.status, 403);
        assert_eq!(
            err.message,
            "CPU request 99 exceeds maximum allowed per sandbox (4)."
        );
        assert!(
            e(serde_json::json!({"name": "s", "imageName": "a:1", "memory": 0})).contains("Memory")
        );
        let big = "R".repeat(MAX_DOCKERFILE_BYTES + 1);
        assert!(
            e(serde_json::json!({"name": "s", "buildInfo": {"dockerfileContent": big}}))
                .contains("maximum size")
        );
        assert!(
            e(serde_json::json!({"name": "s", "buildInfo": {"dockerfileContent": "FROM a:1", "contextHashes": ["../x"]}}))
                .contains("context hash")
        );
    }

    #[test]
    fn list_queries() {
        let q = list_query(None, None, None, None, None).unwrap();
        assert_eq!(
            (q.page, q.limit, q.sort, q.descending),
            (1, 100, SortField::LastUsedAt, true)
        );
        let q = list_query(Some("2.0"), Some("5"), Some("name"), Some("asc"), None).unwrap();
        assert_eq!(
            (q.page, q.limit, q.sort, q.descending),
            (2, 5, SortField::Name, false)
        );
        assert!(list_query(Some("0"), None, None, None, None).is_err());
        assert!(list_query(None, Some("201"), None, None, None).is_err());
        assert!(list_query(None, None, Some("size"), None, None).is_err());
        assert!(list_query(None, None, None, Some("up"), None).is_err());
    }
}
