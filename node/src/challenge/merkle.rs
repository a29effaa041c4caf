//! The Merkle commitment over row hashes (§3.4), with strict proof checking (§8.2.10).
//!
//! The tree is the Python worker's, reproduced exactly so roots and proofs interoperate:
//! leaves are the row-hash **strings** as-is (no leaf hashing, no domain separation); a parent
//! is the lowercase hex SHA-256 of the UTF-8 concatenation `left + right`; levels pair nodes
//! left to right and an odd last node is paired with itself; a single leaf is the root.
//!
//! The Python verifier trusts the prover's directions and path length. Here they are
//! **derived** from the leaf index and the known leaf count (the matrix size): at each level
//! the sibling is on the right (`true`) iff the node's index at that level is even, and the
//! path has one step per level, ⌈log₂ n⌉ steps for n > 1. Honest Python proofs already have
//! exactly this shape, so the stricter check stays interoperable while refusing proofs that
//! place a leaf somewhere other than its claimed row.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ChallengeError;

/// A Merkle proof as the Python worker serialises it (`merkle_proofs[i]`, §3.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    /// Claimed row index. Signed so that a negative JSON value parses and then fails the
    /// check instead of rejecting the whole message.
    pub leaf_index: i64,
    /// Claimed leaf (row hash string).
    pub leaf_hash: String,
    /// Sibling strings, bottom-up.
    pub proof_hashes: Vec<String>,
    /// `true` = the sibling is on the right (the current node is a left child).
    pub proof_directions: Vec<bool>,
}

/// Why a single proof was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofFailure {
    /// The claimed leaf index is negative or not below the leaf count.
    #[error("leaf index {leaf_index} is outside a tree of {leaf_count} leaves")]
    LeafIndexOutOfRange { leaf_index: i64, leaf_count: usize },
    /// `proof_hashes` and `proof_directions` differ in length (Python silently truncates).
    #[error("{hashes} sibling hashes but {directions} directions")]
    HashesDirectionsMismatch { hashes: usize, directions: usize },
    /// The path does not have one step per tree level.
    #[error("proof has {got} steps, a tree of this size needs {expected}")]
    WrongLength { expected: usize, got: usize },
    /// A direction disagrees with the position of the leaf.
    #[error("direction at level {level} does not match the leaf position")]
    WrongDirection { level: usize },
    /// The recomputed root differs from the committed one.
    #[error("recomputed root does not match the committed root")]
    RootMismatch,
}

/// Why a list of row proofs was refused (`verify_row_proofs`, §3.4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RowProofFailure {
    /// Row indices, row hashes and proofs must have the same length.
    #[error("{rows} rows, {hashes} row hashes and {proofs} proofs")]
    LengthMismatch { rows: usize, hashes: usize, proofs: usize },
    /// Nothing to verify.
    #[error("no rows to verify")]
    Empty,
    /// A proof is for a different row than the one requested at its position.
    #[error("proof {position} is for leaf {got}, expected row {expected}")]
    LeafIndexMismatch { position: usize, expected: u64, got: i64 },
    /// A proof's leaf is not the row hash at its position.
    #[error("proof {position} (row {row}) proves a different leaf than the row hash")]
    LeafHashMismatch { position: usize, row: u64 },
    /// A proof did not verify.
    #[error("proof {position} (row {row}): {failure}")]
    Proof { position: usize, row: u64, failure: ProofFailure },
}

/// A built tree: every level, leaves first, root last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<String>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (row-hash strings); an empty list is an error (§3.4).
    pub fn new<S: Into<String>>(leaves: impl IntoIterator<Item = S>) -> Result<Self, ChallengeError> {
        let leaves: Vec<String> = leaves.into_iter().map(Into::into).collect();
        if leaves.is_empty() {
            return Err(ChallengeError::EmptyMerkleTree);
        }
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|level| level.len() > 1) {
            let parents = level
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => hash_pair(left, right),
                    [single] => hash_pair(single, single),
                    _ => String::new(),
                })
                .collect();
            levels.push(parents);
        }
        Ok(Self { levels })
    }

    /// The root string (the leaf itself when there is one leaf).
    pub fn root(&self) -> &str {
        self.levels.last().and_then(|level| level.first()).map_or("", String::as_str)
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// The leaves, in order.
    pub fn leaves(&self) -> &[String] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The proof for one leaf, shaped exactly like the Python worker's (§3.4): for an odd
    /// last node the sibling is the node itself with direction `true`.
    pub fn proof(&self, leaf_index: u64) -> Result<MerkleProof, ChallengeError> {
        let out_of_range = || ChallengeError::LeafIndexOutOfRange { index: leaf_index, leaf_count: self.leaf_count() };
        let index = usize::try_from(leaf_index).map_err(|_| out_of_range())?;
        let leaf_hash = self.leaves().get(index).ok_or_else(out_of_range)?.clone();
        let mut proof_hashes = Vec::new();
        let mut proof_directions = Vec::new();
        let mut at = index;
        // Every level but the root contributes one sibling.
        let below_root = self.levels.split_last().map_or(&[][..], |(_, lower)| lower);
        for level in below_root {
            let sibling_on_right = at % 2 == 0;
            let sibling_at = if sibling_on_right { at + 1 } else { at - 1 };
            // An odd last node is paired with itself.
            let sibling = level.get(sibling_at).or_else(|| level.get(at));
            proof_hashes.push(sibling.cloned().unwrap_or_default());
            proof_directions.push(sibling_on_right);
            at /= 2;
        }
        Ok(MerkleProof {
            leaf_index: i64::try_from(index).map_err(|_| out_of_range())?,
            leaf_hash,
            proof_hashes,
            proof_directions,
        })
    }
}

/// Parent node: lowercase hex SHA-256 of the UTF-8 bytes of `left + right` (§3.4).
pub fn hash_pair(left: &str, right: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(left.as_bytes());
    hasher.update(right.as_bytes());
    hex::encode(hasher.finalize())
}

/// The directions an honest proof for `leaf_index` must carry in a tree of `leaf_count`
/// leaves (`true` = sibling on the right), bottom-up; empty for a single leaf.
pub fn expected_directions(leaf_index: u64, leaf_count: usize) -> Result<Vec<bool>, ChallengeError> {
    let out_of_range = ChallengeError::LeafIndexOutOfRange { index: leaf_index, leaf_count };
    let mut at = usize::try_from(leaf_index).map_err(|_| out_of_range.clone())?;
    if at >= leaf_count {
        return Err(out_of_range);
    }
    let mut width = leaf_count;
    let mut directions = Vec::new();
    while width > 1 {
        directions.push(at % 2 == 0);
        at /= 2;
        width = width.div_ceil(2);
    }
    Ok(directions)
}

/// Strict check of one proof against `root` for a tree of `leaf_count` leaves: the index must
/// be in range, the path must have one step per level, every direction must match the one
/// derived from the index, and the recomputed root must equal `root` (plain string equality,
/// as in Python).
pub fn verify_proof_strict(proof: &MerkleProof, leaf_count: usize, root: &str) -> Result<(), ProofFailure> {
    let expected = u64::try_from(proof.leaf_index)
        .ok()
        .and_then(|index| expected_directions(index, leaf_count).ok())
        .ok_or(ProofFailure::LeafIndexOutOfRange { leaf_index: proof.leaf_index, leaf_count })?;
    if proof.proof_hashes.len() != proof.proof_directions.len() {
        return Err(ProofFailure::HashesDirectionsMismatch {
            hashes: proof.proof_hashes.len(),
            directions: proof.proof_directions.len(),
        });
    }
    if proof.proof_hashes.len() != expected.len() {
        return Err(ProofFailure::WrongLength { expected: expected.len(), got: proof.proof_hashes.len() });
    }
    if let Some(level) = proof.proof_directions.iter().zip(&expected).position(|(got, want)| got != want) {
        return Err(ProofFailure::WrongDirection { level });
    }
    let mut current = proof.leaf_hash.clone();
    for (sibling, &sibling_on_right) in proof.proof_hashes.iter().zip(&proof.proof_directions) {
        current = if sibling_on_right { hash_pair(&current, sibling) } else { hash_pair(sibling, &current) };
    }
    if current == root { Ok(()) } else { Err(ProofFailure::RootMismatch) }
}

/// `verify_row_proofs` (§3.4), strict: equal non-zero lengths; at each position the proof's
/// `leaf_index` is the requested row and its `leaf_hash` is the row hash; every proof passes
/// [`verify_proof_strict`] for a tree of `leaf_count` leaves.
pub fn verify_row_proofs(
    rows: &[u64],
    row_hashes: &[String],
    proofs: &[MerkleProof],
    root: &str,
    leaf_count: usize,
) -> Result<(), RowProofFailure> {
    if rows.len() != row_hashes.len() || row_hashes.len() != proofs.len() {
        return Err(RowProofFailure::LengthMismatch {
            rows: rows.len(),
            hashes: row_hashes.len(),
            proofs: proofs.len(),
        });
    }
    if rows.is_empty() {
        return Err(RowProofFailure::Empty);
    }
    for (position, ((&row, row_hash), proof)) in rows.iter().zip(row_hashes).zip(proofs).enumerate() {
        if u64::try_from(proof.leaf_index).ok() != Some(row) {
            return Err(RowProofFailure::LeafIndexMismatch { position, expected: row, got: proof.leaf_index });
        }
        if &proof.leaf_hash != row_hash {
            return Err(RowProofFailure::LeafHashMismatch { position, row });
        }
    }
    for (position, (&row, proof)) in rows.iter().zip(proofs).enumerate() {
        verify_proof_strict(proof, leaf_count, root).map_err(|failure| RowProofFailure::Proof {
            position,
            row,
            failure,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §9.1 leaves: first 16 hex chars of SHA-256("0".."4").
    fn leaves(count: usize) -> Vec<String> {
        (0..count).map(|i| crate::challenge::sha256_prefix16(i.to_string().as_bytes())).collect()
    }

    #[test]
    fn vector_9_1_leaves() {
        assert_eq!(
            leaves(5),
            ["5feceb66ffc86f38", "6b86b273ff34fce1", "d4735e3a265e16ee", "4e07408562bedb8b", "4b227777d4dd1fc6"]
        );
    }

    #[test]
    fn vector_9_1_roots() {
        assert_eq!(MerkleTree::new(leaves(1)).unwrap().root(), "5feceb66ffc86f38");
        assert_eq!(
            MerkleTree::new(leaves(2)).unwrap().root(),
            "c3b30148e56913decfd88b08cf3ac5ba3c6877489232f6dd41430857a1e72c75"
        );
        assert_eq!(
            hash_pair("5feceb66ffc86f38", "6b86b273ff34fce1"),
            "c3b30148e56913decfd88b08cf3ac5ba3c6877489232f6dd41430857a1e72c75"
        );
        assert_eq!(
            MerkleTree::new(leaves(3)).unwrap().root(),
            "cd118349b9f5a17cbcf6bc75cb664d05cfa3b42e9a5c64ba40c482609a0549b8"
        );
        assert_eq!(
            MerkleTree::new(leaves(5)).unwrap().root(),
            "fb1955e859105ab270a7bbd247380baeb2d3ecf14fb0c6cb352e762798eb8128"
        );
    }

    #[test]
    fn vector_9_1_proofs() {
        let tree = MerkleTree::new(leaves(5)).unwrap();
        let p1 = tree.proof(1).unwrap();
        assert_eq!(
            p1.proof_hashes,
            [
                "5feceb66ffc86f38",
                "7c60a7801856f9089d6cb2771a7fd21a8796a0fb669894be5a87736f0582da3d",
                "5628d401146e264250a9fdd27f5fe2c0a6085ca908fd5167dfb19791bed35695"
            ]
        );
        assert_eq!(p1.proof_directions, [false, true, true]);
        let p4 = tree.proof(4).unwrap();
        assert_eq!(
            p4.proof_hashes,
            [
                "4b227777d4dd1fc6",
                "9d8de882a8e99b97bf8e97e489c79c109d1512d8e6b2e9b5fe84f12ecfde7935",
                "77bafd37643f260ad5aaf4fc436af47ce1948dd31a4ee78cf3248434bd895366"
            ]
        );
        assert_eq!(p4.proof_directions, [true, true, false]);
        for i in 0..5 {
            assert_eq!(verify_proof_strict(&tree.proof(i).unwrap(), 5, tree.root()), Ok(()));
        }
    }

    #[test]
    fn empty_tree_and_out_of_range_proof_are_errors() {
        assert_eq!(MerkleTree::new(Vec::<String>::new()), Err(ChallengeError::EmptyMerkleTree));
        let tree = MerkleTree::new(leaves(3)).unwrap();
        assert!(matches!(tree.proof(3), Err(ChallengeError::LeafIndexOutOfRange { index: 3, leaf_count: 3 })));
        assert!(tree.proof(u64::MAX).is_err());
        assert!(expected_directions(0, 0).is_err());
    }

    #[test]
    fn single_leaf_proof_is_empty_and_verifies() {
        let tree = MerkleTree::new(leaves(1)).unwrap();
        let proof = tree.proof(0).unwrap();
        assert!(proof.proof_hashes.is_empty());
        assert_eq!(verify_proof_strict(&proof, 1, tree.root()), Ok(()));
    }

    #[test]
    fn honest_proofs_have_the_derived_shape_for_every_size() {
        for count in 1..=70usize {
            let tree = MerkleTree::new(leaves(count)).unwrap();
            let depth = if count == 1 { 0 } else { count.next_power_of_two().trailing_zeros() };
            for index in 0..count as u64 {
                let proof = tree.proof(index).unwrap();
                assert_eq!(proof.proof_hashes.len(), depth as usize, "n={count} i={index}");
                assert_eq!(proof.proof_directions, expected_directions(index, count).unwrap());
                assert_eq!(verify_proof_strict(&proof, count, tree.root()), Ok(()));
            }
        }
    }

    #[test]
    fn tampered_proofs_fail_with_the_exact_reason() {
        let tree = MerkleTree::new(leaves(5)).unwrap();
        let root = tree.root();
        let honest = tree.proof(1).unwrap();

        let mut p = honest.clone();
        p.proof_hashes[1] = "00".repeat(32);
        assert_eq!(verify_proof_strict(&p, 5, root), Err(ProofFailure::RootMismatch));

        let mut p = honest.clone();
        p.proof_directions[0] = true;
        assert_eq!(verify_proof_strict(&p, 5, root), Err(ProofFailure::WrongDirection { level: 0 }));

        let mut p = honest.clone();
        p.proof_hashes.pop();
        p.proof_directions.pop();
        assert_eq!(verify_proof_strict(&p, 5, root), Err(ProofFailure::WrongLength { expected: 3, got: 2 }));

        let mut p = honest.clone();
        p.proof_directions.pop();
        assert_eq!(
            verify_proof_strict(&p, 5, root),
            Err(ProofFailure::HashesDirectionsMismatch { hashes: 3, directions: 2 })
        );

        let mut p = honest.clone();
        p.leaf_index = 5;
        assert!(matches!(verify_proof_strict(&p, 5, root), Err(ProofFailure::LeafIndexOutOfRange { .. })));
        p.leaf_index = -1;
        assert!(matches!(verify_proof_strict(&p, 5, root), Err(ProofFailure::LeafIndexOutOfRange { .. })));

        // A proof verified against a claimed leaf count that differs from the real one.
        assert!(matches!(
            verify_proof_strict(&honest, 9, root),
            Err(ProofFailure::WrongLength { expected: 4, got: 3 })
        ));

        // The Python verifier would accept a proof for leaf 0 relabelled as leaf 2 when the
        // path happens to hash to the root; derived directions refuse it.
        let mut p = tree.proof(0).unwrap();
        p.leaf_index = 2;
        assert_eq!(verify_proof_strict(&p, 5, root), Err(ProofFailure::WrongDirection { level: 1 }));
    }

    #[test]
    fn row_proof_lists_follow_verify_row_proofs() {
        let all = leaves(5);
        let tree = MerkleTree::new(all.clone()).unwrap();
        let rows = [1u64, 4];
        let hashes = vec![all[1].clone(), all[4].clone()];
        let proofs = vec![tree.proof(1).unwrap(), tree.proof(4).unwrap()];
        assert_eq!(verify_row_proofs(&rows, &hashes, &proofs, tree.root(), 5), Ok(()));

        assert_eq!(verify_row_proofs(&[], &[], &[], tree.root(), 5), Err(RowProofFailure::Empty));
        assert_eq!(
            verify_row_proofs(&rows, &hashes[..1], &proofs, tree.root(), 5),
            Err(RowProofFailure::LengthMismatch { rows: 2, hashes: 1, proofs: 2 })
        );
        assert_eq!(
            verify_row_proofs(&[1, 3], &hashes, &proofs, tree.root(), 5),
            Err(RowProofFailure::LeafIndexMismatch { position: 1, expected: 3, got: 4 })
        );
        let wrong_hashes = vec![all[1].clone(), all[3].clone()];
        assert_eq!(
            verify_row_proofs(&rows, &wrong_hashes, &proofs, tree.root(), 5),
            Err(RowProofFailure::LeafHashMismatch { position: 1, row: 4 })
        );
        assert!(matches!(
            verify_row_proofs(&rows, &hashes, &proofs, &"0".repeat(64), 5),
            Err(RowProofFailure::Proof { position: 0, row: 1, failure: ProofFailure::RootMismatch })
        ));
    }

    #[test]
    fn proofs_round_trip_through_the_python_json_shape() {
        let json = r#"{"leaf_index": 1, "leaf_hash": "6b86b273ff34fce1",
            "proof_hashes": ["5feceb66ffc86f38"], "proof_directions": [false]}"#;
        let proof: MerkleProof = serde_json::from_str(json).unwrap();
        let tree = MerkleTree::new(leaves(2)).unwrap();
        assert_eq!(proof, tree.proof(1).unwrap());
    }
}
