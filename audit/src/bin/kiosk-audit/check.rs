//! The audit run and inclusion proofs: `check` verifies the new checkpoint, proves it
//! consistent with the last verified one, re-hashes the log and names any tampering, then
//! remembers the new checkpoint; `inclusion` proves one event is in a checkpointed tree.
//!
//! Nothing a source says is trusted by itself: every checkpoint is verified with the
//! auditor's key, and every leaf is re-hashed from the event bytes the source serves.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use audit::checkpoint::{Checkpoint, CheckpointVerifier, SignedCheckpoint};
use audit::merkle::{self, Hash};
use audit::store;
use audit::verify::{self, Tamper};
#[cfg(feature = "online")]
use audit::{store::EventFilter, verify::Rehashed};

use crate::source::{Key, Source, open_db, read_text, rehash_file, verifier};
#[cfg(feature = "online")]
use crate::{online::Online, source::progress};

/// `verify-checkpoint`: the note's signature, then what it says.
pub(crate) fn verify_checkpoint(key: &Key, checkpoint: &Path) -> Result<Vec<Tamper>> {
    let sc = verifier(key)?.verify(&read_text(checkpoint)?)?;
    print_checkpoint(&sc);
    Ok(Vec::new())
}

fn print_checkpoint(sc: &SignedCheckpoint) {
    let c = sc.checkpoint();
    println!(
        "origin {}\nsize {}\nroot {}",
        c.origin(),
        c.size(),
        c.root()
    );
}

/// The state directory: the last verified note and the leaf hashes behind it.
struct State {
    dir: PathBuf,
}

impl State {
    fn note(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    fn leaves(&self) -> PathBuf {
        self.dir.join("leaves.bin")
    }

    fn load(&self, v: &CheckpointVerifier) -> Result<Option<(SignedCheckpoint, Vec<Hash>)>> {
        if !self.note().exists() {
            return Ok(None);
        }
        let sc = v
            .verify(&read_text(&self.note())?)
            .context("the saved checkpoint no longer verifies")?;
        let raw = fs::read(self.leaves()).unwrap_or_default();
        let leaves: Vec<Hash> = raw
            .chunks_exact(32)
            .filter_map(|c| Hash::from_slice(c).ok())
            .collect();
        Ok(Some((sc, leaves)))
    }

    /// Writes atomically (temp file, then rename) so a crash never leaves half a state.
    fn save(&self, sc: &SignedCheckpoint, leaves: &[Hash]) -> Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("leaves.bin.tmp");
        let mut w = BufWriter::new(fs::File::create(&tmp)?);
        for h in leaves {
            w.write_all(h.as_bytes())?;
        }
        w.into_inner().map_err(|e| anyhow!("{e}"))?.sync_all()?;
        fs::rename(&tmp, self.leaves())?;
        let tmp = self.dir.join("checkpoint.tmp");
        fs::write(&tmp, sc.note())?;
        fs::rename(&tmp, self.note())?;
        Ok(())
    }
}

/// What one source showed of the log: its verified new checkpoint, the leaf hashes it
/// re-hashed, and the tampering found on the way.
struct Observed {
    checkpoint: SignedCheckpoint,
    leaves: Vec<Hash>,
    findings: Vec<Tamper>,
}

/// `check`, the audit run. The new checkpoint is remembered only when nothing was found.
pub(crate) async fn check(
    state_dir: &Path,
    key: &Key,
    source: &Source,
    checkpoint: Option<&Path>,
) -> Result<Vec<Tamper>> {
    let v = verifier(key)?;
    let state = State {
        dir: state_dir.to_owned(),
    };
    let previous = state.load(&v)?;
    let old = previous.as_ref().map(|(sc, _)| sc.checkpoint());
    let Observed {
        checkpoint: new_cp,
        leaves: observed,
        mut findings,
    } = match (&source.export, &source.db) {
        (Some(path), _) => observe_export(&v, path, checkpoint, old)?,
        (None, Some(url)) => observe_database(&v, url, checkpoint, old).await?,
        _ => {
            #[allow(unused_mut)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                observe_online(&mut client, &v, checkpoint, old).await?
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    };
    // Leaves the last run verified must still be there, unchanged, at the same places.
    if let Some((_, known)) = &previous
        && let Some(t) = verify::diagnose(known, &observed)
    {
        findings.push(t);
    }
    findings.dedup();
    if findings.is_empty() {
        remember(
            &state,
            &new_cp,
            &observed,
            previous.as_ref().map(|(sc, _)| sc),
        )?;
    }
    Ok(findings)
}

/// The finding when `new` is smaller than the checkpoint verified before: events it held
/// are gone.
fn truncated(old: &Checkpoint, new: &Checkpoint) -> Option<Tamper> {
    (new.size() < old.size()).then_some(Tamper::Truncated {
        size: new.size(),
        expected: old.size(),
    })
}

/// `check --export`: the export's own tree proves consistency from the old checkpoint to
/// the new one.
fn observe_export(
    v: &CheckpointVerifier,
    path: &Path,
    checkpoint: Option<&Path>,
    old: Option<&Checkpoint>,
) -> Result<Observed> {
    let note = checkpoint.ok_or_else(|| anyhow!("--checkpoint is required with --export"))?;
    let new_cp = v.verify(&read_text(note)?)?;
    let re = rehash_file(path)?;
    let mut findings = re.findings.clone();
    findings.extend(re.check_checkpoint(new_cp.checkpoint()));
    if let Some(o) = old {
        let n = new_cp.checkpoint();
        if let Some(t) = truncated(o, n) {
            findings.push(t);
        } else if re.tree.size() >= n.size() {
            let proof = re
                .tree
                .consistency_proof(o.size(), n.size())
                .unwrap_or_default();
            findings.extend(verify::check_consistency(o, n, &proof).err());
        }
    }
    Ok(Observed {
        checkpoint: new_cp,
        leaves: re.leaves(),
        findings,
    })
}

/// `check --db`: the new checkpoint is the one given or the latest stored; the database's
/// node hashes prove consistency, and every stored event is re-hashed.
async fn observe_database(
    v: &CheckpointVerifier,
    url: &str,
    checkpoint: Option<&Path>,
    old: Option<&Checkpoint>,
) -> Result<Observed> {
    let pool = open_db(url).await?;
    let mut conn = pool.acquire().await?;
    let new_cp = match checkpoint {
        Some(p) => v.verify(&read_text(p)?)?,
        None => {
            let stored = store::latest_checkpoint(&mut conn)
                .await?
                .ok_or_else(|| anyhow!("no checkpoint stored yet"))?;
            v.verify(stored.signed.note())?
        }
    };
    let mut findings = Vec::new();
    if let Some(o) = old {
        let n = new_cp.checkpoint();
        if let Some(t) = truncated(o, n) {
            findings.push(t);
        } else {
            let proof = store::consistency_proof(&mut conn, o.size(), n.size())
                .await
                .unwrap_or_default();
            findings.extend(verify::check_consistency(o, n, &proof).err());
        }
    }
    let (re, f) = verify::verify_store(&mut conn, new_cp.checkpoint()).await?;
    findings.extend(f);
    Ok(Observed {
        checkpoint: new_cp,
        leaves: re.leaves(),
        findings,
    })
}

/// `check --online`: the server's checkpoint and consistency proof, checked here, and every
/// event it streams re-hashed from its canonical bytes.
#[cfg(feature = "online")]
async fn observe_online(
    client: &mut Online,
    v: &CheckpointVerifier,
    checkpoint: Option<&Path>,
    old: Option<&Checkpoint>,
) -> Result<Observed> {
    let new_cp = match checkpoint {
        Some(p) => v.verify(&read_text(p)?)?,
        None => v.verify(&client.checkpoint_note().await?)?,
    };
    let mut findings = Vec::new();
    if let Some(o) = old {
        let n = new_cp.checkpoint();
        if let Some(t) = truncated(o, n) {
            findings.push(t);
        } else {
            let proof = client
                .consistency(o.size(), n.size())
                .await
                .unwrap_or_default();
            findings.extend(verify::check_consistency(o, n, &proof).err());
        }
    }
    let bar = progress(new_cp.checkpoint().size(), "re-hashing");
    let mut re = Rehashed::default();
    client
        .events(&EventFilter::default(), |rec| {
            re.push_record(&rec);
            bar.inc(1);
            Ok(())
        })
        .await?;
    bar.finish_and_clear();
    findings.extend(re.findings.iter().cloned());
    findings.extend(re.check_checkpoint(new_cp.checkpoint()));
    Ok(Observed {
        checkpoint: new_cp,
        leaves: re.leaves(),
        findings,
    })
}

/// Saves the verified checkpoint with the leaves it covers, and says so.
fn remember(
    state: &State,
    new_cp: &SignedCheckpoint,
    observed: &[Hash],
    previous: Option<&SignedCheckpoint>,
) -> Result<()> {
    let size = usize::try_from(new_cp.checkpoint().size())?;
    state.save(new_cp, &observed[..size.min(observed.len())])?;
    let c = new_cp.checkpoint();
    match previous {
        Some(old) => println!(
            "OK: {} size {} consistent with verified size {}",
            c.origin(),
            c.size(),
            old.checkpoint().size()
        ),
        None => println!(
            "OK: {} size {} verified (first run; remembered)",
            c.origin(),
            c.size()
        ),
    }
    println!("root {}", c.root());
    Ok(())
}

/// `inclusion`: the event at `index` is in the checkpointed tree, and the proven leaf is the
/// hash of the event the source holds at that index.
pub(crate) async fn inclusion(
    key: &Key,
    source: &Source,
    checkpoint: Option<&Path>,
    index: u64,
) -> Result<Vec<Tamper>> {
    let v = verifier(key)?;
    let (sc, leaf, proof) = match (&source.export, &source.db) {
        (Some(path), _) => {
            let note =
                checkpoint.ok_or_else(|| anyhow!("--checkpoint is required with --export"))?;
            let sc = v.verify(&read_text(note)?)?;
            let re = rehash_file(path)?;
            let leaf = re
                .tree
                .leaf(index)
                .ok_or_else(|| anyhow!("index {index} is not in the export"))?;
            let proof = re.tree.inclusion_proof(index, sc.checkpoint().size())?;
            (sc, leaf, proof)
        }
        (None, Some(url)) => {
            let pool = open_db(url).await?;
            let mut conn = pool.acquire().await?;
            let sc = match checkpoint {
                Some(p) => v.verify(&read_text(p)?)?,
                None => v.verify(
                    store::latest_checkpoint(&mut conn)
                        .await?
                        .ok_or_else(|| anyhow!("no checkpoint"))?
                        .signed
                        .note(),
                )?,
            };
            let (leaf, proof) =
                store::inclusion_proof(&mut conn, index, sc.checkpoint().size()).await?;
            // The leaf must also be the hash of the stored event bytes.
            let ev = store::raw_leaves(&mut conn, index, 1).await?;
            if ev.first().map(|r| merkle::leaf_hash(&r.canonical)) != Some(leaf) {
                return Ok(vec![Tamper::LeafHashMismatch { index }]);
            }
            (sc, leaf, proof)
        }
        _ => {
            #[allow(unused_mut)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                let sc = match checkpoint {
                    Some(p) => v.verify(&read_text(p)?)?,
                    None => v.verify(&client.checkpoint_note().await?)?,
                };
                let (leaf, proof) = client.inclusion(index, sc.checkpoint().size()).await?;
                // The proven leaf must be the hash of the event the server serves at that index.
                let mut served = None;
                let one = EventFilter {
                    start_index: index,
                    limit: Some(1),
                    ..Default::default()
                };
                client
                    .events(&one, |rec| {
                        served = rec.canonical_bytes().map(|b| merkle::leaf_hash(&b));
                        Ok(())
                    })
                    .await?;
                if served != Some(leaf) {
                    return Ok(vec![Tamper::LeafHashMismatch { index }]);
                }
                (sc, leaf, proof)
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    };
    let c = sc.checkpoint();
    match merkle::verify_inclusion(&leaf, index, c.size(), &proof, c.root()) {
        Ok(()) => {
            println!(
                "OK: event {index} (leaf {leaf}) is in {} at size {}",
                c.origin(),
                c.size()
            );
            Ok(Vec::new())
        }
        Err(_) => Ok(vec![Tamper::RootMismatch { size: c.size() }]),
    }
}
