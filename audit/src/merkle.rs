//! RFC 6962 / RFC 9162 Merkle tree hashing, proof construction over stored subtree hashes, and
//! proof verification.
//!
//! The log never recomputes a root from all leaves. It stores the hash of every *complete*
//! subtree (a run of `2^level` leaves starting at a multiple of `2^level`), written once when
//! its last leaf is appended. Every hash an RFC 9162 proof needs is either such a complete
//! subtree or a range that ends at the tree size, and the latter is the fold of at most
//! `log2(n)` complete subtrees. So a proof is planned first ([`inclusion_plan`],
//! [`consistency_plan`]), its complete subtrees are read in one round trip, and the proof is
//! assembled ([`ProofPlan::assemble`]).

use std::collections::HashMap;

use ring::digest;

/// A SHA-256 hash of a leaf or an interior node.
///
/// Invariant: exactly 32 bytes (the type is an array).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

impl Hash {
    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a hash from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MerkleError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| MerkleError::HashLength(bytes.len()))?;
        Ok(Self(array))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, MerkleError> {
        let bytes = hex::decode(text).map_err(|_| MerkleError::HashHex)?;
        Self::from_slice(&bytes)
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Errors of tree arithmetic and proof checking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A hash was not 32 bytes long.
    #[error("a hash must be 32 bytes, got {0}")]
    HashLength(usize),
    /// A hash was not valid hex.
    #[error("a hash must be 64 hex digits")]
    HashHex,
    /// The requested indices or sizes do not describe a valid proof.
    #[error("proof range invalid: {0}")]
    Range(&'static str),
    /// A proof had the wrong number of hashes for its sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    ProofLength {
        /// Hashes given.
        got: usize,
        /// Hashes the sizes call for.
        expected: usize,
    },
    /// The proof does not lead to the expected root.
    #[error("proof does not verify against the root")]
    RootMismatch,
    /// A subtree hash the proof needs was not supplied (storage is incomplete).
    #[error("subtree hash missing: level {level} index {index}")]
    MissingNode {
        /// Level of the subtree (0 = leaf).
        level: u8,
        /// Index of the subtree within its level.
        index: u64,
    },
}

/// RFC 6962 leaf hash: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    finish(ctx)
}

/// RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(&left.0);
    ctx.update(&right.0);
    finish(ctx)
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    finish(digest::Context::new(&digest::SHA256))
}

fn finish(ctx: digest::Context) -> Hash {
    let out = ctx.finish();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(out.as_ref());
    Hash(bytes)
}

/// A complete subtree: leaves `[index * 2^level, (index + 1) * 2^level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a single leaf).
    pub level: u8,
    /// Position among the subtrees of that height.
    pub index: u64,
}

/// A run of leaves `[start, end)` whose hash a proof needs. It is either a complete subtree or
/// ends at the tree size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

impl Span {
    /// The complete subtrees whose fold is this span's hash, left to right. The start is
    /// aligned to a power of two at least as large as the span (true for every span RFC 6962
    /// proofs produce), so the binary decomposition of the length yields aligned subtrees.
    fn subtrees(self) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut at = self.start;
        let mut remaining = self.end - self.start;
        while remaining > 0 {
            let level = 63 - remaining.leading_zeros();
            let size = 1u64 << level;
            // Invariant: level < 64, so the cast cannot truncate.
            out.push(NodeId {
                level: level as u8,
                index: at >> level,
            });
            at += size;
            remaining -= size;
        }
        out
    }
}

/// Largest power of two strictly smaller than `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The subtrees that make up the root of a tree of `size` leaves, left to right (the
/// "frontier"). Empty for the empty tree.
pub fn frontier_nodes(size: u64) -> Vec<NodeId> {
    Span {
        start: 0,
        end: size,
    }
    .subtrees()
}

/// What a proof needs from storage and how to assemble it.
#[derive(Debug, Clone)]
pub struct ProofPlan {
    spans: Vec<Span>,
}

impl ProofPlan {
    /// Every complete subtree whose hash [`ProofPlan::assemble`] will ask for, deduplicated.
    pub fn needed(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.spans.iter().flat_map(|s| s.subtrees()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Builds the proof from the subtree hashes read from storage.
    pub fn assemble(&self, nodes: &HashMap<NodeId, Hash>) -> Result<Vec<Hash>, MerkleError> {
        self.spans
            .iter()
            .map(|s| fold_subtrees(&s.subtrees(), nodes))
            .collect()
    }
}

/// The hash of a span from its complete subtrees: right to left, `node_hash(left, acc)`.
fn fold_subtrees(ids: &[NodeId], nodes: &HashMap<NodeId, Hash>) -> Result<Hash, MerkleError> {
    let mut acc: Option<Hash> = None;
    for id in ids.iter().rev() {
        let h = nodes.get(id).ok_or(MerkleError::MissingNode {
            level: id.level,
            index: id.index,
        })?;
        acc = Some(match acc {
            None => *h,
            Some(right) => node_hash(h, &right),
        });
    }
    acc.ok_or(MerkleError::Range("empty span"))
}

/// The root of a tree of `size` leaves from its frontier subtree hashes (see
/// [`frontier_nodes`]).
pub fn root_from_nodes(size: u64, nodes: &HashMap<NodeId, Hash>) -> Result<Hash, MerkleError> {
    if size == 0 {
        return Ok(empty_root());
    }
    fold_subtrees(&frontier_nodes(size), nodes)
}

/// Plans the RFC 9162 inclusion proof (audit path, leaf to root) of leaf `index` in a tree of
/// `size` leaves. Requires `index < size`.
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, MerkleError> {
    if index >= size {
        return Err(MerkleError::Range("leaf index must be below the tree size"));
    }
    let mut spans = Vec::new();
    path(index, 0, size, &mut spans);
    Ok(ProofPlan { spans })
}

/// RFC 6962 PATH(m, D[start:end]), pushing the deepest sibling first.
fn path(m: u64, start: u64, end: u64, out: &mut Vec<Span>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, start, start + k, out);
        out.push(Span {
            start: start + k,
            end,
        });
    } else {
        path(m - k, start + k, end, out);
        out.push(Span {
            start,
            end: start + k,
        });
    }
}

/// Plans the RFC 9162 consistency proof from a tree of `old_size` leaves to one of `new_size`.
/// Requires `0 < old_size <= new_size`; the proof is empty when the sizes are equal.
pub fn consistency_plan(old_size: u64, new_size: u64) -> Result<ProofPlan, MerkleError> {
    if old_size == 0 || old_size > new_size {
        return Err(MerkleError::Range("need 0 < first size <= second size"));
    }
    let mut spans = Vec::new();
    if old_size < new_size {
        subproof(old_size, 0, new_size, true, &mut spans);
    }
    Ok(ProofPlan { spans })
}

/// RFC 6962 SUBPROOF(m, D[start:end], b).
fn subproof(m: u64, start: u64, end: u64, b: bool, out: &mut Vec<Span>) {
    let n = end - start;
    if m == n {
        if !b {
            out.push(Span { start, end });
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, start, start + k, b, out);
        out.push(Span {
            start: start + k,
            end,
        });
    } else {
        subproof(m - k, start + k, end, false, out);
        out.push(Span {
            start,
            end: start + k,
        });
    }
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` is at `index` in the tree of `size` with `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::Range("leaf index must be below the tree size"));
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::ProofLength {
            got: proof.len(),
            expected,
        });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(MerkleError::RootMismatch);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 || r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let mut spans = Vec::new();
    path(index, 0, size, &mut spans);
    spans.len()
}

/// RFC 9162 §2.1.4.2: verifies that the tree (`old_size`, `old_root`) is a prefix of the tree
/// (`new_size`, `new_root`).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size == 0 || old_size > new_size {
        return Err(MerkleError::Range("need 0 < first size <= second size"));
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::ProofLength {
                got: proof.len(),
                expected: 0,
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    let mut expected_spans = Vec::new();
    subproof(old_size, 0, new_size, true, &mut expected_spans);
    if proof.len() != expected_spans.len() {
        return Err(MerkleError::ProofLength {
            got: proof.len(),
            expected: expected_spans.len(),
        });
    }
    // Step 1 of RFC 9162: if the old size is a power of two, the old root is the first hash.
    let mut path_vec: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path_vec.push(*old_root);
    }
    path_vec.extend_from_slice(proof);
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut iter = path_vec.iter();
    let first = iter.next().ok_or(MerkleError::RootMismatch)?;
    let mut fr = *first;
    let mut sr = *first;
    for c in iter {
        if s_n == 0 {
            return Err(MerkleError::RootMismatch);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if fr != *old_root || sr != *new_root || s_n != 0 {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a tree: the hashes of its frontier subtrees, largest first. Appending a
/// leaf needs only this, so a writer keeps it (at most 64 hashes) instead of reading nodes.
///
/// Invariant: `hashes[i]` is the subtree `frontier_nodes(size)[i]`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash and returns the complete subtrees that became complete with it
    /// (the leaf itself first, then each parent), for storage.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        let mut created = vec![(NodeId { level: 0, index }, leaf)];
        let mut h = leaf;
        let mut level: u8 = 0;
        let mut i = index;
        // Each trailing 1 bit of the index closes a subtree with the frontier's last hash.
        while i & 1 == 1 {
            let Some(left) = self.hashes.pop() else { break };
            h = node_hash(&left, &h);
            level += 1;
            i >>= 1;
            created.push((NodeId { level, index: i }, h));
        }
        self.hashes.push(h);
        self.size += 1;
        created
    }

    /// The root hash of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Serialises as the concatenated hashes (the size is stored beside it).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.iter().flat_map(|h| h.0).collect()
    }

    /// Rebuilds from a size and [`Frontier::to_bytes`], checking the hash count fits the size.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if bytes.len() != expected * 32 {
            return Err(MerkleError::ProofLength {
                got: bytes.len() / 32,
                expected,
            });
        }
        let hashes = bytes
            .chunks_exact(32)
            .map(Hash::from_slice)
            .collect::<Result<_, _>>()?;
        Ok(Self { size, hashes })
    }
}

/// A whole tree in memory (leaf hashes and every complete subtree), for the offline verifier
/// and for tests. Memory: about two hashes per leaf.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        for (id, h) in self.frontier.push(leaf) {
            let level = usize::from(id.level);
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
        }
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The hash of a complete subtree, if it exists yet.
    pub fn node(&self, level: u8, index: u64) -> Option<Hash> {
        self.levels
            .get(usize::from(level))?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The root of the prefix of `size` leaves (`size <= self.size()`).
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        if size > self.size() {
            return Err(MerkleError::Range("size beyond the tree"));
        }
        root_from_nodes(size, &self.lookup(&frontier_nodes(size)))
    }

    /// The inclusion proof of `index` in the prefix of `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        if size > self.size() {
            return Err(MerkleError::Range("size beyond the tree"));
        }
        let plan = inclusion_plan(index, size)?;
        plan.assemble(&self.lookup(&plan.needed()))
    }

    /// The consistency proof between two prefixes.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, MerkleError> {
        if new_size > self.size() {
            return Err(MerkleError::Range("size beyond the tree"));
        }
        let plan = consistency_plan(old_size, new_size)?;
        plan.assemble(&self.lookup(&plan.needed()))
    }

    fn lookup(&self, ids: &[NodeId]) -> HashMap<NodeId, Hash> {
        ids.iter()
            .filter_map(|id| {
                let h = self
                    .levels
                    .get(usize::from(id.level))?
                    .get(usize::try_from(id.index).ok()?)?;
                Some((*id, *h))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(n: u64) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        t
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn every_inclusion_and_consistency_proof_up_to_40_verifies() {
        let t = tree(40);
        for n in 1..=40 {
            let root = t.root_at(n).unwrap();
            for i in 0..n {
                let proof = t.inclusion_proof(i, n).unwrap();
                verify_inclusion(&t.leaf(i).unwrap(), i, n, &proof, &root).unwrap();
                let wrong = leaf_hash(b"other");
                assert_eq!(
                    verify_inclusion(&wrong, i, n, &proof, &root),
                    Err(MerkleError::RootMismatch)
                );
            }
            for m in 1..=n {
                let proof = t.consistency_proof(m, n).unwrap();
                verify_consistency(m, n, &t.root_at(m).unwrap(), &root, &proof).unwrap();
                if m < n {
                    let bad_old = leaf_hash(b"forged");
                    assert!(verify_consistency(m, n, &bad_old, &root, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn frontier_round_trips_through_bytes() {
        let t = tree(13);
        let f = Frontier::from_bytes(13, &t.frontier.to_bytes()).unwrap();
        assert_eq!(f.root(), t.root());
        assert!(Frontier::from_bytes(12, &t.frontier.to_bytes()).is_err());
    }
}
