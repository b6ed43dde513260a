//! Request validation (no I/O).

use cove_api_types::ApiError;

/// Longest volume name accepted.
pub const MAX_NAME_LEN: usize = 255;

/// A volume name: 1..=255 characters, no control characters and no `/` (it appears in
/// `by-name/{name}` paths).
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request("Volume name is required"));
    }
    if name.chars().count() > MAX_NAME_LEN
        || name.chars().any(|c| c.is_control() || c == '/')
        || trimmed != name
    {
        return Err(ApiError::bad_request(format!(
            "Invalid volume name {name:?}: 1 to {MAX_NAME_LEN} characters, no '/', no control characters, no surrounding spaces"
        )));
    }
    Ok(())
}

/// `includeDeleted` of `GET /volumes` (`true`/`false`, default `false`).
pub fn include_deleted(v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "includeDeleted must be true or false, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("v").is_ok());
        assert!(check_name("my-volume_1.x").is_ok());
        for bad in ["", " ", "a/b", "a\nb", " a", &"x".repeat(256)] {
            assert_eq!(check_name(bad).unwrap_err().status, 400, "{bad:?}");
        }
        assert!(include_deleted(Some("true")).unwrap());
        assert!(include_deleted(Some("yes")).is_err());
    }
}
