//! The log's tables in the caller's database (SQLite or PostgreSQL through `sqlx::Any`).
//!
//! Tables: `audit_head` (one row: tree size and the frontier hashes), `audit_event` (one row
//! per leaf, with the canonical bytes and leaf hash), `audit_node` (the hash of every complete
//! subtree above the leaves), `audit_checkpoint` and `audit_anomaly`.
//!
//! # Writing
//!
//! [`append`] and [`append_batch`] take the caller's open transaction (`&mut *tx`), so the
//! event commits with the state change it records or not at all. They serialise writers on
//! the head row: on PostgreSQL with `SELECT ... FOR UPDATE`; on SQLite the first statement is
//! an `UPDATE` of the head row, which takes the database write lock. On SQLite the gateway
//! must begin such transactions with `BEGIN IMMEDIATE` (`pool.begin_with("BEGIN IMMEDIATE")`)
//! or call `append` before reading anything in the transaction: a deferred transaction that
//! read first cannot be upgraded to a writer while another writer is active and fails with
//! `SQLITE_BUSY` instead of waiting. Use `synchronous=FULL` in WAL mode: with `NORMAL` a
//! committed event can vanish after a power cut.
//!
//! An append reads the head row only (the frontier holds every left sibling it needs) and
//! writes the leaf row, one node row per trailing one bit of the index (amortised one), and
//! the head. A proof reads O(log n) rows in two round trips.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use crate::checkpoint::{CheckpointError, CheckpointSigner, SignedCheckpoint};
use crate::event::{
    AnomalyKind, CertificateType, Event, EventError, EventType, Fact, Ident, MunicipalityCode,
    ResolutionNote, UnixMillis, certificate_type, municipality_code,
};
use crate::merkle::{self, Frontier, Hash, MerkleError, NodeId};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database is neither SQLite nor PostgreSQL.
    #[error("unsupported database backend {0}")]
    Backend(String),
    /// An event could not be encoded or a stored one decoded.
    #[error("event: {0}")]
    Event(#[from] EventError),
    /// Tree arithmetic failed (e.g. storage lacks a node).
    #[error("merkle: {0}")]
    Merkle(#[from] MerkleError),
    /// Signing or reading a checkpoint failed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// Requested indices or sizes are outside the log (PROOF_RANGE_INVALID).
    #[error("proof range invalid: {0}")]
    Range(&'static str),
    /// A stored row breaks an invariant: the database was changed outside this crate.
    #[error("stored log is corrupt at index {index}: {what}")]
    Corrupt {
        /// The log index (or tree size) concerned.
        index: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// The head row changed under a writer that should have held its lock.
    #[error("concurrent append detected; the head row was not locked")]
    Conflict,
    /// No anomaly with that id (ANOMALY_NOT_FOUND).
    #[error("anomaly not found")]
    AnomalyNotFound,
    /// The anomaly is already resolved (ANOMALY_ALREADY_RESOLVED).
    #[error("anomaly already resolved")]
    AnomalyAlreadyResolved,
    /// An anomaly with that id exists already.
    #[error("anomaly id already used")]
    AnomalyExists,
}

/// Which SQL dialect a connection speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

fn backend(conn: &AnyConnection) -> Result<Backend, StoreError> {
    match conn.backend_name() {
        "SQLite" => Ok(Backend::Sqlite),
        "PostgreSQL" => Ok(Backend::Postgres),
        other => Err(StoreError::Backend(other.to_owned())),
    }
}

/// Applies this crate's migrations (versions 1000-1999) to the gateway's database.
///
/// They share `_sqlx_migrations` with the gateway's own (1-999), so both migrators must
/// ignore the other's applied versions: this one sets `ignore_missing`, and the gateway's
/// migrator must too.
pub async fn migrate(pool: &AnyPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let source = match backend(&conn)? {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    let mut migrator = Migrator {
        migrations: source.migrations.clone(),
        ..Migrator::DEFAULT
    };
    migrator.set_ignore_missing(true);
    migrator.run(&mut *conn).await?;
    Ok(())
}

/// Where an appended event landed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Appended {
    /// Its log index.
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: Hash,
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Range("value exceeds 2^63"))
}

fn to_u64(v: i64, index: u64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        index,
        what: "negative number",
    })
}

/// Locks the head row for this transaction and reads the frontier.
async fn lock_head(conn: &mut AnyConnection) -> Result<Frontier, StoreError> {
    let row = match backend(conn)? {
        Backend::Postgres => {
            sqlx::query("SELECT tree_size, frontier FROM audit_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *conn)
                .await?
        }
        Backend::Sqlite => {
            // A write first: it takes SQLite's write lock for the rest of the transaction, and
            // returns the head in the same statement (one round trip to sqlx's worker thread).
            sqlx::query(
                "UPDATE audit_head SET tree_size = tree_size WHERE id = 1 \
                 RETURNING tree_size, frontier",
            )
            .fetch_one(&mut *conn)
            .await?
        }
    };
    frontier_of(&row)
}

fn frontier_of(row: &AnyRow) -> Result<Frontier, StoreError> {
    let size = to_u64(row.try_get::<i64, _>(0)?, 0)?;
    let bytes: Vec<u8> = row.try_get(1)?;
    Frontier::from_bytes(size, &bytes).map_err(|_| StoreError::Corrupt {
        index: size,
        what: "head frontier",
    })
}

/// The head without locking: the tree size and frontier as of this connection's snapshot.
async fn read_head(conn: &mut AnyConnection) -> Result<Frontier, StoreError> {
    let row = sqlx::query("SELECT tree_size, frontier FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    frontier_of(&row)
}

/// Appends one event in the caller's transaction. See the module docs for locking.
pub async fn append(conn: &mut AnyConnection, event: &Event) -> Result<Appended, StoreError> {
    let mut out = append_batch(conn, std::slice::from_ref(event)).await?;
    out.pop().ok_or(StoreError::Range("empty batch"))
}

/// Rows per multi-row INSERT, by backend, for two measured reasons. SQLite resolves each `$N`
/// parameter by a linear search, so binding is quadratic in the parameters of one statement
/// (1,000 rows x 13 parameters ran at 2,500 rows/s; 64 rows at over 20,000). sqlx does not
/// set TCP_NODELAY, and a PostgreSQL statement whose message is written in more than one
/// piece waits ~40 ms for a delayed ACK over TCP, so there few large statements win (the
/// parameter limit is 65,535). Over a Unix socket neither limit applies.
fn chunks(backend: Backend) -> (usize, usize) {
    match backend {
        Backend::Sqlite => (64, 256),
        Backend::Postgres => (4_000, 20_000),
    }
}

/// Appends events in order in the caller's transaction, with multi-row inserts.
pub async fn append_batch(
    conn: &mut AnyConnection,
    events: &[Event],
) -> Result<Vec<Appended>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut frontier = lock_head(conn).await?;
    let old_size = frontier.size();
    let mut rows = Vec::with_capacity(events.len());
    let mut nodes: Vec<(NodeId, Hash)> = Vec::with_capacity(events.len());
    let mut appended = Vec::with_capacity(events.len());
    for event in events {
        let canonical = event.encode()?;
        let leaf = merkle::leaf_hash(&canonical);
        let index = frontier.size();
        // Level 0 lives in the event row; only interior subtrees go to audit_node.
        nodes.extend(
            frontier
                .push(leaf)
                .into_iter()
                .filter(|(id, _)| id.level > 0),
        );
        appended.push(Appended {
            index,
            leaf_hash: leaf,
        });
        rows.push((index, event, canonical, leaf));
    }
    let (event_chunk, node_chunk) = chunks(backend(conn)?);
    for chunk in rows.chunks(event_chunk) {
        let mut sql = String::from(
            "INSERT INTO audit_event (idx, recorded_at, event_type, actor_kind, actor_id, terminal_id, \
             municipality_code, session_id, issuance_id, resident_pseudonym, reason, canonical, leaf_hash) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 13);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (index, e, canonical, leaf) in chunk {
            q = q
                .bind(to_i64(*index)?)
                .bind(e.time().0)
                .bind(e.event_type().as_str())
                .bind(e.actor().kind().as_str())
                .bind(e.actor().id())
                .bind(e.terminal().map(|v| v.as_str().to_owned()))
                .bind(e.municipality().map(|v| v.as_str().to_owned()))
                .bind(e.session().map(|v| v.as_str().to_owned()))
                .bind(e.issuance().map(|v| v.as_str().to_owned()))
                .bind(e.resident().map(|v| v.to_hex()))
                .bind(e.reason().map(|v| v.as_str().to_owned()))
                .bind(canonical.clone())
                .bind(leaf.as_bytes().to_vec());
        }
        q.execute(&mut *conn).await?;
    }
    for chunk in nodes.chunks(node_chunk) {
        let mut sql = String::from("INSERT INTO audit_node (lvl, idx, hash) VALUES ");
        push_placeholders(&mut sql, chunk.len(), 3);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, h) in chunk {
            q = q
                .bind(i64::from(id.level))
                .bind(to_i64(id.index)?)
                .bind(h.as_bytes().to_vec());
        }
        q.execute(&mut *conn).await?;
    }
    let done = sqlx::query(
        "UPDATE audit_head SET tree_size = $1, frontier = $2 WHERE id = 1 AND tree_size = $3",
    )
    .bind(to_i64(frontier.size())?)
    .bind(frontier.to_bytes())
    .bind(to_i64(old_size)?)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict);
    }
    Ok(appended)
}

/// Appends `rows` groups of `cols` numbered placeholders, `($1,$2),($3,$4)`, for a
/// multi-row `INSERT … VALUES` (the gateway's stores use it too).
pub fn push_placeholders(sql: &mut String, rows: usize, cols: usize) {
    use std::fmt::Write as _;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..cols {
            // Writing to a String cannot fail.
            let _ = write!(
                sql,
                "{}${}",
                if c == 0 { "" } else { "," },
                r * cols + c + 1
            );
        }
        sql.push(')');
    }
}

/// The current tree size.
pub async fn tree_size(conn: &mut AnyConnection) -> Result<u64, StoreError> {
    Ok(read_head(conn).await?.size())
}

/// The current tree size and root (from the head row alone).
pub async fn tree_head(conn: &mut AnyConnection) -> Result<(u64, Hash), StoreError> {
    let f = read_head(conn).await?;
    Ok((f.size(), f.root()))
}

/// Reads the hashes of the given complete subtrees in at most two queries.
async fn fetch_nodes(
    conn: &mut AnyConnection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    let leaves: Vec<&NodeId> = ids.iter().filter(|id| id.level == 0).collect();
    let inner: Vec<&NodeId> = ids.iter().filter(|id| id.level > 0).collect();
    if !leaves.is_empty() {
        let marks: Vec<String> = (1..=leaves.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT idx, leaf_hash FROM audit_event WHERE idx IN ({})",
            marks.join(",")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in &leaves {
            q = q.bind(to_i64(id.index)?);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let index = to_u64(row.try_get(0)?, 0)?;
            let h: Vec<u8> = row.try_get(1)?;
            let h = Hash::from_slice(&h).map_err(|_| StoreError::Corrupt {
                index,
                what: "leaf hash length",
            })?;
            out.insert(NodeId { level: 0, index }, h);
        }
    }
    if !inner.is_empty() {
        let clauses: Vec<String> = (0..inner.len())
            .map(|i| format!("(lvl = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "SELECT lvl, idx, hash FROM audit_node WHERE {}",
            clauses.join(" OR ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in &inner {
            q = q.bind(i64::from(id.level)).bind(to_i64(id.index)?);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let index = to_u64(row.try_get(1)?, 0)?;
            let level =
                u8::try_from(row.try_get::<i64, _>(0)?).map_err(|_| StoreError::Corrupt {
                    index,
                    what: "node level",
                })?;
            let h: Vec<u8> = row.try_get(2)?;
            let h = Hash::from_slice(&h).map_err(|_| StoreError::Corrupt {
                index,
                what: "node hash length",
            })?;
            out.insert(NodeId { level, index }, h);
        }
    }
    Ok(out)
}

/// The RFC 9162 inclusion proof of `index` in the tree of `size`, and the leaf hash.
/// Requires `index < size <= tree size`.
pub async fn inclusion_proof(
    conn: &mut AnyConnection,
    index: u64,
    size: u64,
) -> Result<(Hash, Vec<Hash>), StoreError> {
    if index >= size || size > tree_size(conn).await? {
        return Err(StoreError::Range("need leaf_index < tree_size <= log size"));
    }
    let plan = merkle::inclusion_plan(index, size)?;
    let mut ids = plan.needed();
    let leaf_id = NodeId { level: 0, index };
    ids.push(leaf_id);
    let nodes = fetch_nodes(conn, &ids).await?;
    let leaf = *nodes.get(&leaf_id).ok_or(StoreError::Corrupt {
        index,
        what: "leaf missing",
    })?;
    Ok((leaf, plan.assemble(&nodes)?))
}

/// The RFC 9162 consistency proof between two tree sizes.
/// Requires `0 < old_size <= new_size <= tree size`.
pub async fn consistency_proof(
    conn: &mut AnyConnection,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, StoreError> {
    if old_size == 0 || old_size > new_size || new_size > tree_size(conn).await? {
        return Err(StoreError::Range(
            "need 0 < first_tree_size <= second_tree_size <= log size",
        ));
    }
    let plan = merkle::consistency_plan(old_size, new_size)?;
    let nodes = fetch_nodes(conn, &plan.needed()).await?;
    Ok(plan.assemble(&nodes)?)
}

/// The root of the tree at an earlier `size` (O(log n) node reads).
pub async fn root_at(conn: &mut AnyConnection, size: u64) -> Result<Hash, StoreError> {
    if size > tree_size(conn).await? {
        return Err(StoreError::Range("size beyond the log"));
    }
    let ids = merkle::frontier_nodes(size);
    let nodes = fetch_nodes(conn, &ids).await?;
    Ok(merkle::root_from_nodes(size, &nodes)?)
}

/// A stored checkpoint with the time it was signed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredCheckpoint {
    /// The signed checkpoint.
    pub signed: SignedCheckpoint,
    /// When it was signed.
    pub signed_at: UnixMillis,
}

/// Signs and stores a checkpoint of the current tree unless one of that size is stored, and
/// returns the stored one. Safe to call from several instances: the first stored wins.
pub async fn checkpoint_now(
    conn: &mut AnyConnection,
    signer: &CheckpointSigner,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let head = read_head(conn).await?;
    if head.size() == 0 {
        return Ok(None);
    }
    if let Some(existing) = checkpoint_at(conn, head.size()).await? {
        return Ok(Some(existing));
    }
    let signed = signer.sign(head.size(), head.root())?;
    sqlx::query(
        "INSERT INTO audit_checkpoint (tree_size, root_hash, note, signed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tree_size) DO NOTHING",
    )
    .bind(to_i64(head.size())?)
    .bind(head.root().as_bytes().to_vec())
    .bind(signed.note().to_owned())
    .bind(UnixMillis::now().0)
    .execute(&mut *conn)
    .await?;
    checkpoint_at(conn, head.size()).await
}

fn stored_checkpoint(row: &AnyRow) -> Result<StoredCheckpoint, StoreError> {
    let note: String = row.try_get(0)?;
    Ok(StoredCheckpoint {
        signed: SignedCheckpoint::from_stored(&note)?,
        signed_at: UnixMillis(row.try_get(1)?),
    })
}

/// The stored checkpoint of exactly `size`, if any.
pub async fn checkpoint_at(
    conn: &mut AnyConnection,
    size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row = sqlx::query("SELECT note, signed_at FROM audit_checkpoint WHERE tree_size = $1")
        .bind(to_i64(size)?)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(stored_checkpoint).transpose()
}

/// The latest stored checkpoint, if any.
pub async fn latest_checkpoint(
    conn: &mut AnyConnection,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row =
        sqlx::query("SELECT note, signed_at FROM audit_checkpoint ORDER BY tree_size DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    row.as_ref().map(stored_checkpoint).transpose()
}

/// Makes a checkpoint every `every` until `shutdown` resolves; the gateway spawns this at
/// start-up. A failed round is returned to the caller only through `on_error` (the log
/// keeps running; the next tick retries).
pub async fn checkpoint_schedule<F, E>(
    pool: AnyPool,
    signer: Arc<CheckpointSigner>,
    every: Duration,
    shutdown: F,
    mut on_error: E,
) where
    F: Future<Output = ()>,
    E: FnMut(StoreError),
{
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticker.tick() => {
                let round = async {
                    let mut conn = pool.acquire().await?;
                    checkpoint_now(&mut conn, &signer).await
                };
                if let Err(e) = round.await {
                    on_error(e);
                }
            }
        }
    }
}

/// One stored event with its position and hashes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredEvent {
    /// Log index.
    pub index: u64,
    /// The decoded event.
    pub event: Event,
    /// The canonical bytes hashed into the log.
    pub canonical: Vec<u8>,
    /// The leaf hash.
    pub leaf_hash: Hash,
}

/// Filters for [`list_events`]; every given filter must match.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Inclusive lower bound on event time.
    pub from: Option<UnixMillis>,
    /// Exclusive upper bound on event time.
    pub to: Option<UnixMillis>,
    /// Only these types (empty: all).
    pub types: Vec<EventType>,
    /// Only this terminal.
    pub terminal: Option<Ident>,
    /// Only this municipality.
    pub municipality: Option<MunicipalityCode>,
    /// Start at this index.
    pub start_index: u64,
    /// At most this many (None: no limit).
    pub limit: Option<u64>,
}

impl EventFilter {
    /// Whether an event passes the non-index filters (for offline exports).
    pub fn matches(&self, e: &Event) -> bool {
        self.from.is_none_or(|f| e.time() >= f)
            && self.to.is_none_or(|t| e.time() < t)
            && (self.types.is_empty() || self.types.contains(&e.event_type()))
            && self
                .terminal
                .as_ref()
                .is_none_or(|t| e.terminal() == Some(t))
            && self
                .municipality
                .as_ref()
                .is_none_or(|m| e.municipality() == Some(m))
    }
}

/// Events in log order that match `filter`. Each row is re-checked: its leaf hash must be the
/// hash of its canonical bytes, and its columns must match the decoded event.
pub async fn list_events(
    conn: &mut AnyConnection,
    filter: &EventFilter,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut sql = String::from(
        "SELECT idx, canonical, leaf_hash, event_type, terminal_id, municipality_code FROM audit_event WHERE idx >= $1",
    );
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    let from_mark = filter.from.map(|_| next());
    let to_mark = filter.to.map(|_| next());
    let term_mark = filter.terminal.as_ref().map(|_| next());
    let muni_mark = filter.municipality.as_ref().map(|_| next());
    let type_marks: Vec<usize> = filter.types.iter().map(|_| next()).collect();
    let limit_mark = filter.limit.map(|_| next());
    if let Some(m) = from_mark {
        sql.push_str(&format!(" AND recorded_at >= ${m}"));
    }
    if let Some(m) = to_mark {
        sql.push_str(&format!(" AND recorded_at < ${m}"));
    }
    if let Some(m) = term_mark {
        sql.push_str(&format!(" AND terminal_id = ${m}"));
    }
    if let Some(m) = muni_mark {
        sql.push_str(&format!(" AND municipality_code = ${m}"));
    }
    if !type_marks.is_empty() {
        let marks: Vec<String> = type_marks.iter().map(|m| format!("${m}")).collect();
        sql.push_str(&format!(" AND event_type IN ({})", marks.join(",")));
    }
    sql.push_str(" ORDER BY idx");
    if let Some(m) = limit_mark {
        sql.push_str(&format!(" LIMIT ${m}"));
    }
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(to_i64(filter.start_index)?);
    if let Some(f) = filter.from {
        q = q.bind(f.0);
    }
    if let Some(t) = filter.to {
        q = q.bind(t.0);
    }
    if let Some(t) = &filter.terminal {
        q = q.bind(t.as_str().to_owned());
    }
    if let Some(m) = &filter.municipality {
        q = q.bind(m.as_str().to_owned());
    }
    for t in &filter.types {
        q = q.bind(t.as_str());
    }
    if let Some(l) = filter.limit {
        q = q.bind(to_i64(l)?);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter().map(checked_event).collect()
}

fn checked_event(row: &AnyRow) -> Result<StoredEvent, StoreError> {
    let index = to_u64(row.try_get(0)?, 0)?;
    let canonical: Vec<u8> = row.try_get(1)?;
    let leaf: Vec<u8> = row.try_get(2)?;
    let leaf = Hash::from_slice(&leaf).map_err(|_| StoreError::Corrupt {
        index,
        what: "leaf hash length",
    })?;
    if merkle::leaf_hash(&canonical) != leaf {
        return Err(StoreError::Corrupt {
            index,
            what: "canonical bytes do not match the leaf hash",
        });
    }
    let event = Event::decode(&canonical).map_err(|_| StoreError::Corrupt {
        index,
        what: "canonical bytes do not decode",
    })?;
    let ty: String = row.try_get(3)?;
    let terminal: Option<String> = row.try_get(4)?;
    let municipality: Option<String> = row.try_get(5)?;
    if ty != event.event_type().as_str()
        || terminal.as_deref() != event.terminal().map(Ident::as_str)
        || municipality.as_deref() != event.municipality().map(MunicipalityCode::as_str)
    {
        return Err(StoreError::Corrupt {
            index,
            what: "columns differ from the canonical event",
        });
    }
    Ok(StoredEvent {
        index,
        event,
        canonical,
        leaf_hash: leaf,
    })
}

/// One stored leaf as it is, unchecked: for verifiers that must report tampering rather than
/// stop at it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RawLeaf {
    /// Index column.
    pub index: u64,
    /// Canonical bytes column.
    pub canonical: Vec<u8>,
    /// Leaf hash column.
    pub leaf_hash: Vec<u8>,
}

/// Reads up to `limit` stored leaves from `start` in index order, unchecked.
pub async fn raw_leaves(
    conn: &mut AnyConnection,
    start: u64,
    limit: u64,
) -> Result<Vec<RawLeaf>, StoreError> {
    let rows = sqlx::query(
        "SELECT idx, canonical, leaf_hash FROM audit_event WHERE idx >= $1 ORDER BY idx LIMIT $2",
    )
    .bind(to_i64(start)?)
    .bind(to_i64(limit)?)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RawLeaf {
                index: to_u64(r.try_get(0)?, 0)?,
                canonical: r.try_get(1)?,
                leaf_hash: r.try_get(2)?,
            })
        })
        .collect()
}

/// An anomaly record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Anomaly {
    /// Its id.
    pub id: Ident,
    /// Its kind.
    pub kind: AnomalyKind,
    /// When it was opened.
    pub opened_at: UnixMillis,
    /// The event that opened it.
    pub opened_event_index: u64,
    /// The terminal concerned.
    pub terminal: Option<Ident>,
    /// The municipality concerned.
    pub municipality: Option<MunicipalityCode>,
    /// The issuance concerned.
    pub issuance: Option<Ident>,
    /// The certificate type concerned.
    pub certificate_type: Option<CertificateType>,
    /// The resolution, once closed.
    pub resolution: Option<Resolution>,
}

/// How an anomaly was closed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Resolution {
    /// Why.
    pub note: ResolutionNote,
    /// When.
    pub at: UnixMillis,
    /// Who (the actor id).
    pub by: String,
    /// The ANOMALY_RESOLVED event.
    pub event_index: u64,
}

/// Opens an anomaly: appends its ANOMALY_OPENED event (built by the caller with
/// [`Event::new`] and facts, or by [`anomaly_opened_event`]) and records it as open. The event
/// must carry `anomaly_id` and `anomaly_kind` facts.
pub async fn open_anomaly(conn: &mut AnyConnection, event: &Event) -> Result<Anomaly, StoreError> {
    let mut anomaly = anomaly_from_opened(event, 0)?;
    let appended = append(conn, event).await?;
    anomaly.opened_event_index = appended.index;
    let exists = sqlx::query("SELECT 1 FROM audit_anomaly WHERE anomaly_id = $1")
        .bind(anomaly.id.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Err(StoreError::AnomalyExists);
    }
    sqlx::query(
        "INSERT INTO audit_anomaly (anomaly_id, kind, opened_at, opened_event_index, terminal_id, \
         municipality_code, issuance_id, certificate_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(anomaly.id.as_str().to_owned())
    .bind(anomaly.kind.as_str())
    .bind(anomaly.opened_at.0)
    .bind(to_i64(anomaly.opened_event_index)?)
    .bind(anomaly.terminal.as_ref().map(|v| v.as_str().to_owned()))
    .bind(anomaly.municipality.as_ref().map(|v| v.as_str().to_owned()))
    .bind(anomaly.issuance.as_ref().map(|v| v.as_str().to_owned()))
    .bind(anomaly.certificate_type.map(|v| v.code()))
    .execute(&mut *conn)
    .await?;
    Ok(anomaly)
}

/// Builds an ANOMALY_OPENED event by the system for an issuance.
pub fn anomaly_opened_event(
    time: UnixMillis,
    id: Ident,
    kind: AnomalyKind,
    facts: &crate::event::IssuanceFacts,
) -> Event {
    Event::new(time, EventType::AnomalyOpened, crate::event::Actor::System)
        .with_terminal(facts.terminal.clone())
        .with_municipality(facts.municipality.clone())
        .with_session(facts.session.clone())
        .with_issuance(facts.issuance.clone())
        .with_fact(Fact::AnomalyId(id))
        .with_fact(Fact::AnomalyKind(kind))
        .with_fact(Fact::CertificateType(facts.certificate_type))
        .with_fact(Fact::Chain(facts.chain.clone()))
        .with_fact(Fact::Store(facts.store.clone()))
}

fn anomaly_from_opened(event: &Event, index: u64) -> Result<Anomaly, StoreError> {
    let bad = || {
        StoreError::Event(EventError::Invalid {
            field: "anomaly event",
            rule: "needs anomaly_id and anomaly_kind",
        })
    };
    if event.event_type() != EventType::AnomalyOpened {
        return Err(bad());
    }
    let Some(Fact::AnomalyId(id)) = event.fact("anomaly_id") else {
        return Err(bad());
    };
    let Some(Fact::AnomalyKind(kind)) = event.fact("anomaly_kind") else {
        return Err(bad());
    };
    let certificate_type = match event.fact("certificate_type") {
        Some(Fact::CertificateType(c)) => Some(*c),
        _ => None,
    };
    Ok(Anomaly {
        id: id.clone(),
        kind: *kind,
        opened_at: event.time(),
        opened_event_index: index,
        terminal: event.terminal().cloned(),
        municipality: event.municipality().cloned(),
        issuance: event.issuance().cloned(),
        certificate_type,
        resolution: None,
    })
}

/// Resolves an open anomaly: appends the ANOMALY_RESOLVED event and closes the record, in the
/// caller's transaction (roll it back on error). The resolver is an operator or auditor.
pub async fn resolve_anomaly(
    conn: &mut AnyConnection,
    time: UnixMillis,
    id: &Ident,
    resolver: crate::event::Actor,
    note: ResolutionNote,
) -> Result<Anomaly, StoreError> {
    // Lock the head first so that concurrent resolutions serialise (SQLite: write lock).
    lock_head(conn).await?;
    let row = sqlx::query(ANOMALY_SELECT_ONE)
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::AnomalyNotFound);
    };
    let mut anomaly = anomaly_of(&row)?;
    if anomaly.resolution.is_some() {
        return Err(StoreError::AnomalyAlreadyResolved);
    }
    let by = resolver.id();
    let mut event = Event::new(time, EventType::AnomalyResolved, resolver)
        .with_fact(Fact::AnomalyId(id.clone()))
        .with_fact(Fact::AnomalyKind(anomaly.kind))
        .with_fact(Fact::Resolution(note.clone()))
        .with_fact(Fact::EventIndex(anomaly.opened_event_index));
    if let Some(t) = &anomaly.terminal {
        event = event.with_terminal(t.clone());
    }
    if let Some(m) = &anomaly.municipality {
        event = event.with_municipality(m.clone());
    }
    if let Some(i) = &anomaly.issuance {
        event = event.with_issuance(i.clone());
    }
    let appended = append(conn, &event).await?;
    let done = sqlx::query(
        "UPDATE audit_anomaly SET resolution = $1, resolved_at = $2, resolved_by = $3, resolved_event_index = $4 \
         WHERE anomaly_id = $5 AND resolution IS NULL",
    )
    .bind(note.as_str().to_owned())
    .bind(time.0)
    .bind(by.clone())
    .bind(to_i64(appended.index)?)
    .bind(id.as_str().to_owned())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::AnomalyAlreadyResolved);
    }
    anomaly.resolution = Some(Resolution {
        note,
        at: time,
        by,
        event_index: appended.index,
    });
    Ok(anomaly)
}

const ANOMALY_COLUMNS: &str = "anomaly_id, kind, opened_at, opened_event_index, terminal_id, municipality_code, \
     issuance_id, certificate_type, resolution, resolved_at, resolved_by, resolved_event_index";
const ANOMALY_SELECT_ONE: &str = "SELECT anomaly_id, kind, opened_at, opened_event_index, terminal_id, municipality_code, \
     issuance_id, certificate_type, resolution, resolved_at, resolved_by, resolved_event_index \
     FROM audit_anomaly WHERE anomaly_id = $1";

fn anomaly_of(row: &AnyRow) -> Result<Anomaly, StoreError> {
    let opened_event_index = to_u64(row.try_get(3)?, 0)?;
    let corrupt = |_| StoreError::Corrupt {
        index: opened_event_index,
        what: "anomaly row",
    };
    let opt = |i: usize| -> Result<Option<String>, StoreError> { Ok(row.try_get(i)?) };
    let resolution = match (
        opt(8)?,
        row.try_get::<Option<i64>, _>(9)?,
        opt(10)?,
        row.try_get::<Option<i64>, _>(11)?,
    ) {
        (Some(note), Some(at), Some(by), Some(ev)) => Some(Resolution {
            note: ResolutionNote::parse(&note).map_err(corrupt)?,
            at: UnixMillis(at),
            by,
            event_index: to_u64(ev, opened_event_index)?,
        }),
        _ => None,
    };
    Ok(Anomaly {
        id: Ident::parse(&row.try_get::<String, _>(0)?).map_err(corrupt)?,
        kind: AnomalyKind::parse(&row.try_get::<String, _>(1)?).map_err(corrupt)?,
        opened_at: UnixMillis(row.try_get(2)?),
        opened_event_index,
        terminal: opt(4)?
            .map(|v| Ident::parse(&v))
            .transpose()
            .map_err(corrupt)?,
        municipality: opt(5)?
            .map(|v| municipality_code(&v))
            .transpose()
            .map_err(corrupt)?,
        issuance: opt(6)?
            .map(|v| Ident::parse(&v))
            .transpose()
            .map_err(corrupt)?,
        certificate_type: opt(7)?
            .map(|v| certificate_type(&v))
            .transpose()
            .map_err(corrupt)?,
        resolution,
    })
}

/// Anomalies, open ones only unless `include_resolved`, oldest first.
pub async fn list_anomalies(
    conn: &mut AnyConnection,
    include_resolved: bool,
) -> Result<Vec<Anomaly>, StoreError> {
    let sql = if include_resolved {
        format!("SELECT {ANOMALY_COLUMNS} FROM audit_anomaly ORDER BY opened_event_index")
    } else {
        format!(
            "SELECT {ANOMALY_COLUMNS} FROM audit_anomaly WHERE resolution IS NULL ORDER BY opened_event_index"
        )
    };
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(anomaly_of).collect()
}

/// Rebuilds the anomaly list from events alone (for offline auditors working from an export).
pub fn anomalies_from_events<'a>(
    events: impl IntoIterator<Item = (u64, &'a Event)>,
) -> Vec<Anomaly> {
    let mut out: Vec<Anomaly> = Vec::new();
    for (index, e) in events {
        match e.event_type() {
            EventType::AnomalyOpened => {
                if let Ok(a) = anomaly_from_opened(e, index) {
                    out.push(a);
                }
            }
            EventType::AnomalyResolved => {
                let (Some(Fact::AnomalyId(id)), Some(Fact::Resolution(note))) =
                    (e.fact("anomaly_id"), e.fact("resolution"))
                else {
                    continue;
                };
                if let Some(a) = out
                    .iter_mut()
                    .find(|a| &a.id == id && a.resolution.is_none())
                {
                    a.resolution = Some(Resolution {
                        note: note.clone(),
                        at: e.time(),
                        by: e.actor().id(),
                        event_index: index,
                    });
                }
            }
            _ => {}
        }
    }
    out
}
