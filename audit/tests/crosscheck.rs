//! Cross-checks roots, proofs and checkpoints against independent implementations:
//! tlog_tiles 0.2 (a port of Go's sumdb/tlog), ct-merkle 0.3 and signed_note 0.2.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed assertion with its location"
)]

use audit::checkpoint::{CheckpointSigner, CheckpointVerifier};
use audit::merkle::{self, Hash, MemoryTree};
use proptest::prelude::*;
use signed_note::{Note, StandardVerifier, VerifierList};

/// tlog_tiles' storage: every stored hash in its own index order.
struct TlogStore(Vec<tlog_tiles::Hash>);

impl tlog_tiles::HashReader for TlogStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

fn entries(n: u64, salt: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("entry {i} salt {salt}").into_bytes())
        .collect()
}

fn ours(entries: &[Vec<u8>]) -> MemoryTree {
    let mut t = MemoryTree::new();
    for e in entries {
        t.push(merkle::leaf_hash(e));
    }
    t
}

fn tlog(entries: &[Vec<u8>]) -> TlogStore {
    let mut s = TlogStore(Vec::new());
    for (i, e) in entries.iter().enumerate() {
        let new = tlog_tiles::stored_hashes(i as u64, e, &s).unwrap();
        s.0.extend(new);
    }
    s
}

fn th(h: &Hash) -> tlog_tiles::Hash {
    tlog_tiles::Hash(*h.as_bytes())
}

fn ct(entries: &[Vec<u8>]) -> ct_merkle::mem_backed_tree::MemoryBackedTree<sha2::Sha256, Vec<u8>> {
    let mut t = ct_merkle::mem_backed_tree::MemoryBackedTree::new();
    for e in entries {
        t.push(e.clone());
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roots_and_proofs_match_tlog_tiles(n in 1u64..300, salt in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
        let e = entries(n, salt);
        let t = ours(&e);
        let s = tlog(&e);
        // Random sizes and indices within the tree.
        let size = 1 + a % n;
        let index = b % size;
        let old = 1 + b % size;
        let root = t.root_at(size).unwrap();
        prop_assert_eq!(th(&root), tlog_tiles::tree_hash(size, &s).unwrap());
        prop_assert_eq!(th(&merkle::leaf_hash(&e[index as usize])), tlog_tiles::record_hash(&e[index as usize]));

        let proof = t.inclusion_proof(index, size).unwrap();
        let theirs = tlog_tiles::prove_record(size, index, &s).unwrap();
        prop_assert_eq!(proof.iter().map(th).collect::<Vec<_>>(), theirs.clone());
        prop_assert!(tlog_tiles::check_record(&proof.iter().map(th).collect(), size, th(&root), index, tlog_tiles::record_hash(&e[index as usize])).is_ok());

        let cproof = t.consistency_proof(old, size).unwrap();
        let ctheirs = tlog_tiles::prove_tree(size, old, &s).unwrap();
        prop_assert_eq!(cproof.iter().map(th).collect::<Vec<_>>(), ctheirs.clone());
        let old_root = t.root_at(old).unwrap();
        // Their proof verifies with our verifier.
        let converted: Vec<Hash> = ctheirs.iter().map(|h| Hash::from_bytes(h.0)).collect();
        prop_assert!(merkle::verify_consistency(old, size, &old_root, &root, &converted).is_ok());
        prop_assert!(tlog_tiles::check_tree(&ctheirs, size, th(&root), old, th(&old_root)).is_ok());
    }

    #[test]
    fn roots_and_proofs_match_ct_merkle(n in 1u64..200, salt in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
        let e = entries(n, salt);
        let t = ours(&e);
        let size = 1 + a % n;
        let c = ct(&e[..size as usize]);
        let root = t.root_at(size).unwrap();
        let their_root = c.root();
        prop_assert_eq!(their_root.as_bytes().as_slice(), root.as_bytes().as_slice());
        let index = b % size;
        let theirs = c.prove_inclusion(index as usize);
        let ours_proof: Vec<u8> = t.inclusion_proof(index, size).unwrap().iter().flat_map(|h| *h.as_bytes()).collect();
        prop_assert_eq!(theirs.as_bytes(), ours_proof.as_slice());
        prop_assert!(c.root().verify_inclusion(&e[index as usize], index, &ct_merkle::InclusionProof::from_bytes(ours_proof)).is_ok());
        let old = 1 + b % size;
        let cons = c.prove_consistency((size - old) as usize);
        let ours_cons: Vec<u8> = t.consistency_proof(old, size).unwrap().iter().flat_map(|h| *h.as_bytes()).collect();
        prop_assert_eq!(cons.as_bytes(), ours_cons.as_slice());
    }

    #[test]
    fn wrong_proofs_are_rejected(n in 2u64..200, a in any::<u64>(), flip in any::<u8>()) {
        let e = entries(n, 1);
        let t = ours(&e);
        let index = a % n;
        let mut proof = t.inclusion_proof(index, n).unwrap();
        if proof.is_empty() { return Ok(()); }
        let k = (flip as usize) % proof.len();
        let mut bytes = *proof[k].as_bytes();
        bytes[0] ^= 1;
        proof[k] = Hash::from_bytes(bytes);
        prop_assert!(merkle::verify_inclusion(&t.leaf(index).unwrap(), index, n, &proof, &t.root()).is_err());
        // The right proof for a different index does not verify for this one.
        let other = (index + 1) % n;
        let good = t.inclusion_proof(other, n).unwrap();
        prop_assert!(merkle::verify_inclusion(&t.leaf(index).unwrap(), index, n, &good, &t.root()).is_err());
    }
}

#[test]
fn signed_note_verifies_our_checkpoint_and_tlog_tiles_parses_its_body() {
    let signer = CheckpointSigner::from_seed("kiosk.example.lg.jp/audit/v1", &[42u8; 32]).unwrap();
    let root = merkle::leaf_hash(b"root");
    let sc = signer.sign(123_456, root).unwrap();
    let vkey = signer.verifier().vkey();

    let note = Note::from_bytes(sc.note().as_bytes()).unwrap();
    let verifier = StandardVerifier::new(&vkey).unwrap();
    let (verified, unverified) = note
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .unwrap();
    assert_eq!(verified.len(), 1);
    assert!(unverified.is_empty());
    assert_eq!(
        verified[0].id(),
        u32::from_be_bytes(audit::checkpoint::key_id(
            "kiosk.example.lg.jp/audit/v1",
            &signer.public_key()
        ))
    );

    let cp = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(cp.origin(), "kiosk.example.lg.jp/audit/v1");
    assert_eq!(cp.size(), 123_456);
    assert_eq!(cp.hash().0, *root.as_bytes());
}

#[test]
fn our_verifier_accepts_signed_note_signatures_and_ignores_unknown_keys() {
    let seed = [7u8; 32];
    let ours_signer = CheckpointSigner::from_seed("kiosk.example/audit", &seed).unwrap();
    let v = ours_signer.verifier();
    // Sign the same body with signed_note's signer from the same seed, plus an unknown key.
    let theirs = signed_note::StandardSigner::new(&skey("kiosk.example/audit", seed)).unwrap();
    let other = signed_note::StandardSigner::new(&skey("witness.example", [8u8; 32])).unwrap();
    let body = audit::Checkpoint::new("kiosk.example/audit", 9, merkle::leaf_hash(b"r"))
        .unwrap()
        .body();
    let mut note = Note::new(body.as_bytes(), &[]).unwrap();
    note.add_sigs(&[&other, &theirs]).unwrap();
    let text = String::from_utf8(note.to_bytes()).unwrap();
    let sc = v.verify(&text).unwrap();
    assert_eq!(sc.checkpoint().size(), 9);
    // Only the unknown key: rejected.
    let mut only_other = Note::new(body.as_bytes(), &[]).unwrap();
    only_other.add_sigs(&[&other]).unwrap();
    assert!(
        v.verify(&String::from_utf8(only_other.to_bytes()).unwrap())
            .is_err()
    );
    assert!(CheckpointVerifier::parse_vkey(&v.vkey()).is_ok());
}

/// signed_note's private key string for an Ed25519 seed: `PRIVATE+KEY+name+id+base64(1||seed)`.
fn skey(name: &str, seed: [u8; 32]) -> String {
    use base64::Engine as _;
    let pk = CheckpointSigner::from_seed(name, &seed)
        .unwrap()
        .public_key();
    let id = u32::from_be_bytes(audit::checkpoint::key_id(name, &pk));
    let mut key = vec![1u8];
    key.extend_from_slice(&seed);
    format!(
        "PRIVATE+KEY+{name}+{id:08x}+{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}
