//! `sqlx::migrate!` embeds the migration files at compile time but does not register the
//! folder for rebuilds on stable Rust; without this a new migration is silently left out.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
