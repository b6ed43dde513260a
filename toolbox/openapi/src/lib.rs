//! `openapi/toolbox.json`, generated from the toolbox daemon's code (`cove-toolbox` with its
//! `openapi` feature, which the musl daemon never enables), and its checks:
//!
//! * `tests/drift.rs`: the checked-in document equals [`document_json`];
//! * `tests/routes.rs`: every routed `(method, path)` is documented and every documented one is
//!   routed (the real router is probed);
//! * `tests/upstream.rs`: the upstream operations Cove lacks, compared with Daytona's toolbox spec
//!   (vendored as `openapi/upstream/daytona-toolbox-operations.txt`), equal the checked-in
//!   `openapi/upstream/toolbox-missing.txt`.
//!
//! Regenerate both files with `EXPECTORATE=overwrite cargo test --release -p cove-toolbox-openapi`.

pub use cove_toolbox::openapi::document;

/// The document as checked in: pretty JSON with a final newline.
pub fn document_json() -> String {
    let json = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("cannot serialize the document: {e}"));
    format!("{json}\n")
}

/// One operation: `METHOD /path operationId`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub method: String,
    pub path: String,
    pub operation_id: String,
}

impl Operation {
    /// `(METHOD, path)` with every path parameter written `{}` (`{sessionId}` and `{id}` agree).
    pub fn key(&self) -> (String, String) {
        (self.method.clone(), normalize(&self.path))
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.method, self.path, self.operation_id)
    }
}

/// `path` with each `{name}` replaced by `{}`.
pub fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// Parses `METHOD /path operationId` lines; blank lines and `#` comments are skipped.
pub fn parse_operations(text: &str) -> Vec<Operation> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(Operation {
                method: it.next()?.to_ascii_uppercase(),
                path: it.next()?.to_owned(),
                operation_id: it.next().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Every operation of our document, sorted by path then method.
pub fn our_operations() -> Vec<Operation> {
    let doc = document();
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                out.push(Operation {
                    method: method.to_owned(),
                    path: path.clone(),
                    operation_id: op.operation_id.clone().unwrap_or_default(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    out
}

/// The `upstream` operations with no `(method, normalized path)` in `ours`, in upstream order.
pub fn missing(upstream: &[Operation], ours: &[Operation]) -> Vec<Operation> {
    let have: std::collections::BTreeSet<_> = ours.iter().map(Operation::key).collect();
    upstream
        .iter()
        .filter(|op| !have.contains(&op.key()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_normalized() {
        assert_eq!(
            normalize("/process/session/{sessionId}/command/{commandId}"),
            "/process/session/{}/command/{}"
        );
        assert_eq!(
            normalize("/process/pty/{id}"),
            normalize("/process/pty/{sessionId}")
        );
        assert_eq!(normalize("/files"), "/files");
    }

    #[test]
    fn missing_ignores_parameter_names() {
        let up = parse_operations("# c\nGET /a/{id} A\n\npost /b B\nDELETE /c/{x} C\n");
        let ours = parse_operations("GET /a/{sessionId} Mine\nPOST /b B\n");
        let m = missing(&up, &ours);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].to_string(), "DELETE /c/{x} C");
    }
}
