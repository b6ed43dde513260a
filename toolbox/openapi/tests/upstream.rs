//! Which of Daytona's toolbox operations Cove lacks. The list must equal the checked-in
//! `openapi/upstream/toolbox-missing.txt`: adding (or dropping) a route means updating it, with
//! `EXPECTORATE=overwrite cargo test --release -p cove-toolbox-openapi --test upstream`.
//! Path parameter names do not matter (`{sessionId}` and `{id}` agree).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_toolbox_openapi::{Operation, missing, our_operations, parse_operations};

const UPSTREAM: &str = "../../openapi/upstream/daytona-toolbox-operations.txt";
const MISSING: &str = "../../openapi/upstream/toolbox-missing.txt";

fn upstream() -> Vec<Operation> {
    let text = std::fs::read_to_string(UPSTREAM).expect("vendored upstream operations");
    let ops = parse_operations(&text);
    assert!(
        ops.len() > 90,
        "only {} upstream operations read",
        ops.len()
    );
    ops
}

#[test]
fn the_upstream_operations_cove_lacks_are_the_listed_ones() {
    let lacking = missing(&upstream(), &our_operations());
    let mut text = String::from(
        "# Daytona toolbox operations (openapi/upstream/daytona-toolbox-operations.txt) that\n\
         # openapi/toolbox.json lacks, one per line: METHOD /path operationId. Checked by\n\
         # toolbox/openapi/tests/upstream.rs; regenerate with\n\
         #   EXPECTORATE=overwrite cargo test --release -p cove-toolbox-openapi --test upstream\n",
    );
    for op in &lacking {
        text.push_str(&format!("{op}\n"));
    }
    expectorate::assert_contents(MISSING, &text);
}

#[test]
fn covered_operations_keep_daytonas_operation_ids() {
    let ours = our_operations();
    let mut differ = Vec::new();
    for up in upstream() {
        if let Some(mine) = ours.iter().find(|o| o.key() == up.key())
            && mine.operation_id != up.operation_id
        {
            differ.push(format!("{up} (ours: {})", mine.operation_id));
        }
    }
    assert!(differ.is_empty(), "operationIds differ: {differ:#?}");
}
