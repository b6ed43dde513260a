//! Prints the table `cove_store` creates (keys, attribute types, indexes with their projections,
//! billing, TTL attribute) as JSON: what `tests/infra` compares `infra/terraform` with.

fn main() -> Result<(), serde_json::Error> {
    println!(
        "{}",
        serde_json::to_string_pretty(&cove_store::TABLE_DEFINITION)?
    );
    Ok(())
}
