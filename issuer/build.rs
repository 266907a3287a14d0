//! Rebuilds the crate when a migration changes, so `sqlx::migrate!` embeds the new files
//! (sqlx#4267: without this, an added migration is silently missed).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
