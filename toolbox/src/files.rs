//! `/files/*`: list, info, delete, folder, move, permissions, find, search, replace, download,
//! upload and the multipart bulk transfer of CONTRACT §10.1–10.2.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cove_api_types::toolbox::{
    FileInfo, FilesDownloadRequest, FsFileResult, Match, ReplaceRequest, ReplaceResult,
    SearchFilesResponse, UploadFilesResponse, UploadedFile,
};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError, envelope};
use crate::server::{AppState, JsonBody, QueryParams};

const CHUNK: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListQuery {
    path: Option<String>,
    depth: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct PathQuery {
    path: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct DeleteQuery {
    path: String,
    recursive: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct FolderQuery {
    path: String,
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct MoveQuery {
    source: String,
    destination: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct PermissionsQuery {
    path: String,
    owner: Option<String>,
    group: Option<String>,
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct PatternQuery {
    path: String,
    pattern: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct UploadQuery {
    path: String,
}

type AppStateRef = State<Arc<AppState>>;

/// `GET /files?path=&depth=`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/files",
    tag = "file-system",
    operation_id = "ListFiles",
    summary = "List a directory",
    params(ListQuery),
    responses((status = 200, description = "Entries, `depth` levels deep", body = Vec<FileInfo>), DaemonErrors)
))]
pub async fn list(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<FileInfo>>> {
    let dir = st.paths.resolve_or_work_dir(q.path.as_deref())?;
    let shown = q
        .path
        .clone()
        .unwrap_or_else(|| st.paths.work_dir_virtual());
    let depth = q.depth.unwrap_or(1).max(1);
    let st2 = st.clone();
    let out = tokio::task::spawn_blocking(move || {
        let meta = std::fs::metadata(&dir).map_err(|e| ToolboxError::io(&shown, e))?;
        if !meta.is_dir() {
            return Err(ToolboxError::BadRequest(format!(
                "not a directory: {shown}"
            )));
        }
        let mut out = Vec::new();
        list_into(&st2, &dir, depth, &mut out).map_err(|e| ToolboxError::io(&shown, e))?;
        Ok(out)
    })
    .await
    .map_err(|e| ToolboxError::Internal(e.to_string()))??;
    Ok(Json(out))
}

fn list_into(
    st: &AppState,
    dir: &Path,
    depth: u32,
    out: &mut Vec<FileInfo>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let info = file_info(st, &path, &meta);
        out.push(info);
        if depth > 1 && meta.is_dir() {
            // Unreadable subdirectories are listed but not descended into.
            let _ = list_into(st, &path, depth - 1, out);
        }
    }
    Ok(())
}

/// `GET /files/info?path=`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/files/info",
    tag = "file-system",
    operation_id = "GetFileInfo",
    summary = "Describe a file or directory",
    params(PathQuery),
    responses((status = 200, description = "The entry", body = FileInfo), DaemonErrors)
))]
pub async fn info(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<Json<FileInfo>> {
    let real = st.paths.resolve(&q.path)?;
    let meta = tokio::fs::metadata(&real)
        .await
        .map_err(|e| ToolboxError::io(&q.path, e))?;
    Ok(Json(file_info(&st, &real, &meta)))
}

/// `DELETE /files?path=&recursive=` → 204
#[cfg_attr(feature = "openapi", utoipa::path(
    delete,
    path = "/files",
    tag = "file-system",
    operation_id = "DeleteFile",
    summary = "Delete a file or directory",
    params(DeleteQuery),
    responses((status = 204, description = "Deleted"), DaemonErrors)
))]
pub async fn delete(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<DeleteQuery>,
) -> Result<StatusCode> {
    let real = st.paths.resolve(&q.path)?;
    if real == st.paths.resolve("/")? {
        return Err(ToolboxError::AccessDenied("refusing to delete /".into()));
    }
    let meta = tokio::fs::symlink_metadata(&real)
        .await
        .map_err(|e| ToolboxError::io(&q.path, e))?;
    let res = if meta.is_dir() {
        if q.recursive.unwrap_or(false) {
            tokio::fs::remove_dir_all(&real).await
        } else {
            return Err(ToolboxError::BadRequest(format!(
                "{} is a directory; set recursive=true to delete it",
                q.path
            )));
        }
    } else {
        tokio::fs::remove_file(&real).await
    };
    res.map_err(|e| ToolboxError::io(&q.path, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /files/folder?path=&mode=` → 201
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/folder",
    tag = "file-system",
    operation_id = "CreateFolder",
    summary = "Create a directory (and its parents)",
    params(FolderQuery),
    responses((status = 201, description = "Created"), DaemonErrors)
))]
pub async fn folder(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<FolderQuery>,
) -> Result<StatusCode> {
    let mode = match q.mode.as_deref() {
        Some(m) if !m.is_empty() => Some(parse_mode(m)?),
        _ => None,
    };
    let real = st.paths.resolve(&q.path)?;
    tokio::fs::create_dir_all(&real)
        .await
        .map_err(|e| ToolboxError::io(&q.path, e))?;
    if let Some(mode) = mode {
        tokio::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode))
            .await
            .map_err(|e| ToolboxError::io(&q.path, e))?;
    }
    Ok(StatusCode::CREATED)
}

/// `POST /files/move?source=&destination=`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/move",
    tag = "file-system",
    operation_id = "MoveFile",
    summary = "Move or rename a file or directory",
    params(MoveQuery),
    responses((status = 200, description = "Moved"), DaemonErrors)
))]
pub async fn move_file(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<MoveQuery>,
) -> Result<StatusCode> {
    let src = st.paths.resolve(&q.source)?;
    let dst = st.paths.resolve(&q.destination)?;
    tokio::fs::symlink_metadata(&src)
        .await
        .map_err(|e| ToolboxError::io(&q.source, e))?;
    if tokio::fs::symlink_metadata(&dst).await.is_ok() {
        return Err(ToolboxError::Conflict(format!(
            "destination already exists: {}",
            q.destination
        )));
    }
    if let Some(parent) = dst.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| ToolboxError::io(&q.destination, e))?;
    }
    tokio::fs::rename(&src, &dst)
        .await
        .map_err(|e| ToolboxError::io(&q.source, e))?;
    Ok(StatusCode::OK)
}

/// `POST /files/permissions?path=&owner=&group=&mode=`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/permissions",
    tag = "file-system",
    operation_id = "SetFilePermissions",
    summary = "Change mode, owner or group",
    params(PermissionsQuery),
    responses((status = 200, description = "Changed"), DaemonErrors)
))]
pub async fn permissions(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<PermissionsQuery>,
) -> Result<StatusCode> {
    let mode = match q.mode.as_deref() {
        Some(m) if !m.is_empty() => Some(parse_mode(m)?),
        _ => None,
    };
    let uid = match q.owner.as_deref() {
        Some(o) if !o.is_empty() => Some(
            lookup_id(o, &ids().users)
                .ok_or_else(|| ToolboxError::BadRequest(format!("unknown owner: {o}")))?,
        ),
        _ => None,
    };
    let gid = match q.group.as_deref() {
        Some(g) if !g.is_empty() => Some(
            lookup_id(g, &ids().groups)
                .ok_or_else(|| ToolboxError::BadRequest(format!("unknown group: {g}")))?,
        ),
        _ => None,
    };
    let real = st.paths.resolve(&q.path)?;
    tokio::fs::metadata(&real)
        .await
        .map_err(|e| ToolboxError::io(&q.path, e))?;
    if let Some(mode) = mode {
        tokio::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode))
            .await
            .map_err(|e| ToolboxError::io(&q.path, e))?;
    }
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(&real, uid, gid).map_err(|e| ToolboxError::io(&q.path, e))?;
    }
    Ok(StatusCode::OK)
}

/// Octal mode such as `755` or `0644`.
pub fn parse_mode(mode: &str) -> Result<u32> {
    let invalid = || ToolboxError::BadRequest(format!("invalid file mode: {mode}"));
    if mode.is_empty() || mode.len() > 4 || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(invalid());
    }
    u32::from_str_radix(mode, 8).map_err(|_| invalid())
}

/// `GET /files/find?path=&pattern=`: lines containing `pattern`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/files/find",
    tag = "file-system",
    operation_id = "FindInFiles",
    summary = "Find lines containing a text",
    params(PatternQuery),
    responses((status = 200, description = "Matching lines", body = Vec<Match>), DaemonErrors)
))]
pub async fn find(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<PatternQuery>,
) -> Result<Json<Vec<Match>>> {
    if q.pattern.is_empty() {
        return Err(ToolboxError::BadRequest("pattern is empty".into()));
    }
    let root = st.paths.resolve(&q.path)?;
    let st2 = st.clone();
    let matches = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        walk(&root, &mut |path, meta| {
            if !meta.is_file() {
                return;
            }
            let Ok(data) = std::fs::read(path) else {
                return;
            };
            if data[..data.len().min(8000)].contains(&0) {
                return;
            }
            let text = String::from_utf8_lossy(&data);
            for (i, line) in text.lines().enumerate() {
                if line.contains(&q.pattern) {
                    out.push(Match {
                        file: st2.paths.to_virtual(path),
                        line: i as i64 + 1,
                        content: line.to_owned(),
                    });
                }
            }
        });
        out
    })
    .await
    .map_err(|e| ToolboxError::Internal(e.to_string()))?;
    Ok(Json(matches))
}

/// `GET /files/search?path=&pattern=`: names matching a glob.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/files/search",
    tag = "file-system",
    operation_id = "SearchFiles",
    summary = "Find files whose name matches a glob",
    params(PatternQuery),
    responses((status = 200, description = "Matching paths", body = SearchFilesResponse), DaemonErrors)
))]
pub async fn search(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<PatternQuery>,
) -> Result<Json<SearchFilesResponse>> {
    let root = st.paths.resolve(&q.path)?;
    let st2 = st.clone();
    let files = tokio::task::spawn_blocking(move || {
        let pattern: Vec<char> = q.pattern.chars().collect();
        let mut out = Vec::new();
        walk(&root, &mut |path, _| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let name: Vec<char> = name.chars().collect();
            if glob_match(&pattern, &name) {
                out.push(st2.paths.to_virtual(path));
            }
        });
        out
    })
    .await
    .map_err(|e| ToolboxError::Internal(e.to_string()))?;
    Ok(Json(SearchFilesResponse { files }))
}

/// Depth-first walk below `root` (not including it) that never follows symlinks.
fn walk(root: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        f(&path, &meta);
        if meta.is_dir() {
            walk(&path, f);
        }
    }
}

/// Shell-style glob: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
pub fn glob_match(pat: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                '*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                '?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = class_match(&pat[p..], name[n])
                        && matched
                    {
                        p += len;
                        n += 1;
                        continue;
                    }
                }
                c => {
                    if c == name[n] {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == '*')
}

/// Matches a `[...]` class at the start of `pat`; returns (matched, class length).
fn class_match(pat: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(1), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == '-' && pat[i + 2] != ']' {
            if pat[i] <= c && c <= pat[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if pat[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// `POST /files/replace`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/replace",
    tag = "file-system",
    operation_id = "ReplaceInFiles",
    summary = "Replace a text in files",
    request_body = ReplaceRequest,
    responses((status = 200, description = "One result per file", body = Vec<ReplaceResult>), DaemonErrors)
))]
pub async fn replace(
    State(st): AppStateRef,
    JsonBody(req): JsonBody<ReplaceRequest>,
) -> Result<Json<Vec<ReplaceResult>>> {
    if req.pattern.is_empty() {
        return Err(ToolboxError::BadRequest("pattern is empty".into()));
    }
    let mut results = Vec::with_capacity(req.files.len());
    for file in &req.files {
        let outcome = async {
            let real = st.paths.resolve(file)?;
            let data = tokio::fs::read(&real)
                .await
                .map_err(|e| ToolboxError::io(file, e))?;
            let text = String::from_utf8(data)
                .map_err(|_| ToolboxError::BadRequest(format!("{file} is not UTF-8 text")))?;
            let new = text.replace(&req.pattern, &req.new_value);
            if new != text {
                tokio::fs::write(&real, new)
                    .await
                    .map_err(|e| ToolboxError::io(file, e))?;
            }
            Ok::<_, ToolboxError>(())
        }
        .await;
        results.push(match outcome {
            Ok(()) => ReplaceResult {
                file: Some(file.clone()),
                success: Some(true),
                error: None,
            },
            Err(e) => ReplaceResult {
                file: Some(file.clone()),
                success: Some(false),
                error: Some(e.to_string()),
            },
        });
    }
    Ok(Json(results))
}

/// `GET /files/download?path=`: raw bytes.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/files/download",
    tag = "file-system",
    operation_id = "DownloadFile",
    summary = "Download a file",
    params(PathQuery),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"), DaemonErrors)
))]
pub async fn download(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<Response> {
    let real = st.paths.resolve(&q.path)?;
    let (file, len) = open_regular(&real, &q.path).await?;
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", quote(&name)),
            ),
        ],
        Body::from_stream(file_stream(file, len)),
    )
        .into_response())
}

async fn open_regular(real: &Path, shown: &str) -> Result<(tokio::fs::File, u64)> {
    let file = tokio::fs::File::open(real)
        .await
        .map_err(|e| ToolboxError::io(shown, e))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| ToolboxError::io(shown, e))?;
    if meta.is_dir() {
        return Err(ToolboxError::BadRequest(format!("{shown} is a directory")));
    }
    Ok((file, meta.len()))
}

/// Exactly `len` bytes of `file` (zero-padded if the file shrank meanwhile).
fn file_stream(
    file: tokio::fs::File,
    len: u64,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    futures::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = match file.read(&mut buf).await {
            Ok(0) => want, // file shrank: keep the declared length
            Ok(n) => n,
            Err(e) => return Some((Err(e), (file, 0))),
        };
        buf.truncate(n);
        Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
    })
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `POST /files/bulk-download` → multipart/form-data, one `file` or `error` part per path.
type PartSender = futures::channel::mpsc::Sender<std::io::Result<Bytes>>;

/// The `Content-Disposition` line of the part for `path` (echoed byte for byte, §10.2).
fn disposition(name: &str, path: &str) -> String {
    format!(
        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"; filename*=utf-8''{}\r\n",
        quote(path),
        percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// Sends the part of one path: its bytes (`file`), or its error envelope (`error`). `Err` when
/// the client went away.
async fn send_part(st: &AppState, tx: &mut PartSender, b: &str, path: &str) -> Result<(), ()> {
    let opened = match st.paths.resolve(path) {
        Ok(real) => open_regular(&real, path).await,
        Err(e) => Err(e),
    };
    let gone = |_| ();
    match opened {
        Ok((file, len)) => {
            let head = format!(
                "--{b}\r\nContent-Type: application/octet-stream\r\n{}Content-Length: {len}\r\n\r\n",
                disposition("file", path)
            );
            tx.send(Ok(Bytes::from(head))).await.map_err(gone)?;
            let mut s = std::pin::pin!(file_stream(file, len));
            while let Some(chunk) = s.next().await {
                tx.send(chunk).await.map_err(gone)?;
            }
        }
        Err(e) => {
            let err = envelope(
                e.status(),
                e.code(),
                e.to_string(),
                "/files/bulk-download",
                "POST",
            );
            let body = serde_json::to_vec(&err).unwrap_or_default();
            let head = format!(
                "--{b}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n",
                disposition("error", path),
                body.len()
            );
            tx.send(Ok(Bytes::from(head))).await.map_err(gone)?;
            tx.send(Ok(Bytes::from(body))).await.map_err(gone)?;
        }
    }
    tx.send(Ok(Bytes::from_static(b"\r\n"))).await.map_err(gone)
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/bulk-download",
    tag = "file-system",
    operation_id = "DownloadFiles",
    summary = "Download files as multipart parts",
    request_body = FilesDownloadRequest,
    responses((status = 200, description = "One `file` (or `error`) part per path, CONTRACT §10.2", content_type = "multipart/form-data"), DaemonErrors)
))]
pub async fn bulk_download(
    State(st): AppStateRef,
    JsonBody(req): JsonBody<FilesDownloadRequest>,
) -> Result<Response> {
    let boundary = format!("cove-{}", uuid::Uuid::new_v4().simple());
    let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(8);
    let b = boundary.clone();
    tokio::spawn(async move {
        for path in &req.paths {
            if send_part(&st, &mut tx, &b, path).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(Bytes::from(format!("--{b}--\r\n")))).await;
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )],
        Body::from_stream(rx),
    )
        .into_response())
}

/// Writes one multipart field to `real`, creating parent dirs; returns the byte count.
async fn write_field(real: &Path, shown: &str, field: &mut Field<'_>) -> Result<u64> {
    if let Some(parent) = real.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| ToolboxError::io(shown, e))?;
    }
    let mut file = tokio::fs::File::create(real)
        .await
        .map_err(|e| ToolboxError::io(shown, e))?;
    let mut total = 0u64;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ToolboxError::BadRequest(format!("malformed multipart body: {e}")))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| ToolboxError::io(shown, e))?;
        total += chunk.len() as u64;
    }
    file.flush().await.map_err(|e| ToolboxError::io(shown, e))?;
    Ok(total)
}

/// Parses `files[3].path` into (3, "path").
fn field_slot(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("files[")?;
    let (idx, kind) = rest.split_once("].")?;
    Some((idx.parse().ok()?, kind))
}

fn malformed(e: axum::extract::multipart::MultipartError) -> ToolboxError {
    ToolboxError::BadRequest(format!("malformed multipart body: {e}"))
}

/// `files[i].file` parts that came before their `files[i].path`: spilled to the state dir, so an
/// upload in any part order is streamed, never held in memory.
struct Spilled {
    dir: PathBuf,
    parts: HashMap<usize, (PathBuf, u64)>,
}

impl Spilled {
    async fn spill(&mut self, idx: usize, field: &mut Field<'_>) -> Result<()> {
        let tmp = self
            .dir
            .join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
        let bytes = write_field(&tmp, &format!("files[{idx}]"), field).await?;
        if let Some((old, _)) = self.parts.insert(idx, (tmp, bytes)) {
            let _ = tokio::fs::remove_file(old).await;
        }
        Ok(())
    }

    /// Moves the spilled part `idx` (if any) to `real`.
    async fn place(
        &mut self,
        idx: usize,
        real: Result<PathBuf>,
        shown: &str,
    ) -> Option<Result<u64>> {
        let (tmp, bytes) = self.parts.remove(&idx)?;
        let outcome = async {
            let real = real?;
            if let Some(parent) = real.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| ToolboxError::io(shown, e))?;
            }
            if tokio::fs::rename(&tmp, &real).await.is_err() {
                // Another file system: copy (the spilled part is removed below).
                tokio::fs::copy(&tmp, &real)
                    .await
                    .map_err(|e| ToolboxError::io(shown, e))?;
            }
            Ok(bytes)
        }
        .await;
        let _ = tokio::fs::remove_file(&tmp).await;
        Some(outcome)
    }

    /// Removes what is left; returns the indexes that never got a path.
    async fn discard(self) -> Vec<usize> {
        let mut left: Vec<_> = self.parts.keys().copied().collect();
        left.sort_unstable();
        for (tmp, _) in self.parts.into_values() {
            let _ = tokio::fs::remove_file(tmp).await;
        }
        left
    }
}

/// Reads every part of a bulk upload, writing each file as it streams in.
async fn upload_parts(
    st: &AppState,
    multipart: &mut Multipart,
    spilled: &mut Spilled,
    resp: &mut UploadFilesResponse,
) -> Result<()> {
    let mut paths: HashMap<usize, String> = HashMap::new();
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        match field_slot(&name) {
            Some((idx, "path")) => {
                let path = field.text().await.map_err(malformed)?;
                if let Some(o) = spilled.place(idx, st.paths.resolve(&path), &path).await {
                    record(resp, &path, o);
                }
                paths.insert(idx, path);
            }
            Some((idx, "file")) => match paths.get(&idx) {
                Some(path) => {
                    let outcome = match st.paths.resolve(path) {
                        Ok(real) => write_field(&real, path, &mut field).await,
                        Err(e) => Err(e),
                    };
                    if let Err(ToolboxError::BadRequest(m)) = &outcome
                        && m.starts_with("malformed multipart")
                    {
                        return Err(ToolboxError::BadRequest(m.clone()));
                    }
                    record(resp, path, outcome);
                }
                None => spilled.spill(idx, &mut field).await?,
            },
            _ => {}
        }
    }
    Ok(())
}

/// `POST /files/bulk-upload` (CONTRACT §10.1).
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/bulk-upload",
    tag = "file-system",
    operation_id = "UploadFiles",
    summary = "Upload files (streamed, any size)",
    request_body(content_type = "multipart/form-data", description = "Parts `files[i].path` then `files[i].file`, CONTRACT §10.1"),
    responses((status = 200, description = "The written files", body = UploadFilesResponse), DaemonErrors)
))]
pub async fn bulk_upload(State(st): AppStateRef, mut multipart: Multipart) -> Result<Response> {
    let mut spilled = Spilled {
        dir: st.state_dir.clone(),
        parts: HashMap::new(),
    };
    let mut resp = UploadFilesResponse::default();
    let outcome = upload_parts(&st, &mut multipart, &mut spilled, &mut resp).await;
    for idx in spilled.discard().await {
        resp.errors
            .push(format!("files[{idx}]: missing destination path"));
    }
    outcome?;
    let status = if resp.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(resp)).into_response())
}

fn record(resp: &mut UploadFilesResponse, path: &str, outcome: Result<u64>) {
    match outcome {
        Ok(bytes) => resp.files.push(FsFileResult {
            path: path.to_owned(),
            bytes: bytes as i64,
        }),
        Err(e) => resp.errors.push(format!("{path}: {e}")),
    }
}

/// `POST /files/upload-v2?path=`: multipart part `file`.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/upload-v2",
    tag = "file-system",
    operation_id = "UploadFile",
    summary = "Upload one file (streamed, any size)",
    params(UploadQuery),
    request_body(content_type = "multipart/form-data", description = "Part `file`"),
    responses((status = 200, description = "The written file", body = UploadedFile), DaemonErrors)
))]
pub async fn upload(
    State(st): AppStateRef,
    QueryParams(q): QueryParams<UploadQuery>,
    mut multipart: Multipart,
) -> Result<Json<UploadedFile>> {
    let mut real = st.paths.resolve(&q.path)?;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(str::to_owned);
        if tokio::fs::metadata(&real).await.is_ok_and(|m| m.is_dir()) {
            let name = filename
                .as_deref()
                .and_then(|f| Path::new(f).file_name())
                .ok_or_else(|| ToolboxError::BadRequest(format!("{} is a directory", q.path)))?;
            real = real.join(name);
            st.paths.resolve(&st.paths.to_virtual(&real))?;
        }
        let kind = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        write_field(&real, &q.path, &mut field).await?;
        return Ok(Json(UploadedFile {
            name: real
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: st.paths.to_virtual(&real),
            kind,
        }));
    }
    Err(ToolboxError::BadRequest(
        "multipart part `file` is missing".into(),
    ))
}

/// `POST /files/upload?path=`: the older daemon's name of `/files/upload-v2`.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/files/upload",
    tag = "file-system",
    operation_id = "UploadFileLegacy",
    summary = "Upload one file (legacy name of `/files/upload-v2`)",
    params(UploadQuery),
    request_body(content_type = "multipart/form-data", description = "Part `file`"),
    responses((status = 200, description = "The written file", body = UploadedFile), DaemonErrors)
))]
#[deprecated = "route alias: the older name of `/files/upload-v2`"]
pub async fn upload_legacy(
    st: AppStateRef,
    q: QueryParams<UploadQuery>,
    multipart: Multipart,
) -> Result<Json<UploadedFile>> {
    upload(st, q, multipart).await
}

// ---------------------------------------------------------------- file info

struct Ids {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    user_names: HashMap<u32, String>,
    group_names: HashMap<u32, String>,
}

fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| {
        let parse = |file: &str| -> (HashMap<String, u32>, HashMap<u32, String>) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut by_name = HashMap::new();
            let mut by_id = HashMap::new();
            for line in text.lines() {
                let mut it = line.split(':');
                if let (Some(name), Some(_), Some(id)) = (it.next(), it.next(), it.next())
                    && let Ok(id) = id.parse::<u32>()
                {
                    by_name.insert(name.to_owned(), id);
                    by_id.entry(id).or_insert_with(|| name.to_owned());
                }
            }
            (by_name, by_id)
        };
        let (users, user_names) = parse("/etc/passwd");
        let (groups, group_names) = parse("/etc/group");
        Ids {
            users,
            groups,
            user_names,
            group_names,
        }
    })
}

fn lookup_id(name: &str, table: &HashMap<String, u32>) -> Option<u32> {
    name.parse::<u32>()
        .ok()
        .or_else(|| table.get(name).copied())
}

fn mode_string(meta: &std::fs::Metadata) -> String {
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    let t = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'L'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_socket() {
        'S'
    } else if ft.is_block_device() || ft.is_char_device() {
        'D'
    } else {
        '-'
    };
    let m = meta.mode();
    let mut s = String::with_capacity(10);
    s.push(t);
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o40, 'r'),
        (0o20, 'w'),
        (0o10, 'x'),
        (0o4, 'r'),
        (0o2, 'w'),
        (0o1, 'x'),
    ] {
        s.push(if m & bit != 0 { c } else { '-' });
    }
    s
}

/// `FileInfo` for `real` (virtual path in `path`).
pub fn file_info(st: &AppState, real: &Path, meta: &std::fs::Metadata) -> FileInfo {
    let mtime = time::OffsetDateTime::from_unix_timestamp(meta.mtime())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let go_fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
    );
    let ids = ids();
    FileInfo {
        name: real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
        size: meta.len() as i64,
        mode: mode_string(meta),
        mod_time: mtime.format(go_fmt).unwrap_or_default(),
        modified_at: mtime
            .format(&time::format_description::well_known::Rfc3339)
            .ok(),
        is_dir: meta.is_dir(),
        owner: ids
            .user_names
            .get(&meta.uid())
            .cloned()
            .unwrap_or_else(|| meta.uid().to_string()),
        group: ids
            .group_names
            .get(&meta.gid())
            .cloned()
            .unwrap_or_else(|| meta.gid().to_string()),
        permissions: format!("{:04o}", meta.mode() & 0o7777),
        path: Some(st.paths.to_virtual(real)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, n: &str) -> bool {
        glob_match(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn globbing() {
        assert!(g("*.rs", "main.rs"));
        assert!(!g("*.rs", "main.rsx"));
        assert!(g("ma?n.*", "main.rs"));
        assert!(g("[a-c]*", "beta"));
        assert!(!g("[!a-c]*", "beta"));
        assert!(g("*", ""));
        assert!(g("a*b*c", "aXXbYYc"));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("755").ok(), Some(0o755));
        assert_eq!(parse_mode("0644").ok(), Some(0o644));
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("rwx").is_err());
        assert!(parse_mode("77777").is_err());
    }

    #[test]
    fn slots() {
        assert_eq!(field_slot("files[12].path"), Some((12, "path")));
        assert_eq!(field_slot("files[x].path"), None);
    }
}
