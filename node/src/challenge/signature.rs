//! GPU commitment signature (§3.3, checked at Phase 1).
//!
//! Each GPU commitment carries an ECDSA P-256 / SHA-256 signature over
//! `"0x{sig_ver:x}|{seed hex}|{gpu uuid}|{merkle root}"`, made with a private key embedded in
//! the closed CUDA binary (so it proves "the binary produced this root", not hardware;
//! §8.2.7). The decoding rules follow the Python validator so that exactly the same
//! signatures are accepted:
//!
//! - `sig_val` is tried as hex first (`bytes.fromhex`: ASCII whitespace allowed between byte
//!   pairs), then as strict base64 (`b64decode(validate=True)`: canonical padding, nothing
//!   outside the alphabet, non-zero trailing bits tolerated);
//! - the result must be exactly 64 bytes, `r ‖ s` big-endian, and not all zero;
//! - verification has OpenSSL semantics: `0 < r, s < n`, and **high-S is accepted** (the
//!   P-256 curve in `p256` does not normalise S on verification).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};

/// The fixed commitment public key, uncompressed SEC1, 65 bytes (§3.3).
pub const GPU_COMMITMENT_PUBLIC_KEY_HEX: &str = "045db4dcfa2559220159eba6bb8b7f16e4c4962bb9d862a7df8a1ce4138c01e14533213760877d4eaba3f84a7e1e1b29cb0f3320ff90f01dc206c22cffc0b09afb";

/// Length of the raw `r ‖ s` signature (§3.3).
const RAW_SIGNATURE_LEN: usize = 64;

/// Python's `base64.b64decode(s, validate=True)`.
const STRICT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Why a GPU commitment signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFailure {
    /// Seed, uuid, root or signature is empty.
    #[error("missing {0}")]
    MissingField(&'static str),
    /// `sig_val` is neither hex nor strict base64.
    #[error("signature is neither hex nor base64")]
    NotHexOrBase64,
    /// Decoded signature is not 64 bytes.
    #[error("signature is {0} bytes, expected 64 (r‖s)")]
    WrongLength(usize),
    /// The all-zero placeholder signature.
    #[error("signature is all zeros")]
    AllZero,
    /// r or s is zero or not below the curve order.
    #[error("signature scalars out of range")]
    ScalarsOutOfRange,
    /// The signature does not verify under the commitment key.
    #[error("signature does not verify")]
    Invalid,
    /// The built-in public key failed to parse (a bug, never miner-caused).
    #[error("commitment public key is invalid")]
    BadPublicKey,
}

/// The exact signed message: `"0x{sig_ver in lowercase hex}|{seed}|{uuid}|{root}"` (§3.3,
/// §9.7). A negative version is written the way Python formats it (`0x-1`).
pub fn gpu_commitment_message(sig_ver: i64, seed_hex: &str, gpu_uuid: &str, merkle_root: &str) -> String {
    let version = if sig_ver < 0 { format!("-{:x}", sig_ver.unsigned_abs()) } else { format!("{sig_ver:x}") };
    format!("0x{version}|{seed_hex}|{gpu_uuid}|{merkle_root}")
}

/// Decodes `sig_val` into the 64 raw bytes `r ‖ s` with the Python rules (hex first, then
/// strict base64; 64 bytes; not all zero).
pub fn decode_signature(sig_val: &str) -> Result<[u8; RAW_SIGNATURE_LEN], SignatureFailure> {
    let bytes = python_fromhex(sig_val)
        .or_else(|| STRICT_BASE64.decode(sig_val).ok())
        .ok_or(SignatureFailure::NotHexOrBase64)?;
    let raw: [u8; RAW_SIGNATURE_LEN] =
        bytes.as_slice().try_into().map_err(|_| SignatureFailure::WrongLength(bytes.len()))?;
    if raw.iter().all(|&b| b == 0) {
        return Err(SignatureFailure::AllZero);
    }
    Ok(raw)
}

/// Checks a GPU commitment signature against the fixed commitment key (§3.3).
pub fn verify_gpu_commitment_signature(
    sig_ver: i64,
    seed_hex: &str,
    gpu_uuid: &str,
    merkle_root: &str,
    sig_val: &str,
) -> Result<(), SignatureFailure> {
    let key_bytes = hex::decode(GPU_COMMITMENT_PUBLIC_KEY_HEX).map_err(|_| SignatureFailure::BadPublicKey)?;
    let key = VerifyingKey::from_sec1_bytes(&key_bytes).map_err(|_| SignatureFailure::BadPublicKey)?;
    verify_with_key(&key, sig_ver, seed_hex, gpu_uuid, merkle_root, sig_val)
}

/// Checks a GPU commitment signature against a configured key (65-byte uncompressed SEC1 point
/// in hex). Production uses [`GPU_COMMITMENT_PUBLIC_KEY_HEX`]; a devnet uses its own key so its
/// simulated GPU workers can sign.
pub fn verify_gpu_commitment_signature_with(
    public_key_hex: &str,
    sig_ver: i64,
    seed_hex: &str,
    gpu_uuid: &str,
    merkle_root: &str,
    sig_val: &str,
) -> Result<(), SignatureFailure> {
    let key_bytes = hex::decode(public_key_hex).map_err(|_| SignatureFailure::BadPublicKey)?;
    let key = VerifyingKey::from_sec1_bytes(&key_bytes).map_err(|_| SignatureFailure::BadPublicKey)?;
    verify_with_key(&key, sig_ver, seed_hex, gpu_uuid, merkle_root, sig_val)
}

fn verify_with_key(
    key: &VerifyingKey,
    sig_ver: i64,
    seed_hex: &str,
    gpu_uuid: &str,
    merkle_root: &str,
    sig_val: &str,
) -> Result<(), SignatureFailure> {
    for (name, value) in
        [("merkle_root", merkle_root), ("sig_val", sig_val), ("seed", seed_hex), ("gpu uuid", gpu_uuid)]
    {
        if value.is_empty() {
            return Err(SignatureFailure::MissingField(name));
        }
    }
    let raw = decode_signature(sig_val)?;
    let signature = Signature::from_slice(&raw).map_err(|_| SignatureFailure::ScalarsOutOfRange)?;
    let message = gpu_commitment_message(sig_ver, seed_hex, gpu_uuid, merkle_root);
    key.verify(message.as_bytes(), &signature).map_err(|_| SignatureFailure::Invalid)
}

/// CPython's `bytes.fromhex`: pairs of hex digits (either case), ASCII whitespace allowed
/// only between pairs. `None` when it would raise.
fn python_fromhex(text: &str) -> Option<Vec<u8>> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C);
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut bytes = text.bytes().peekable();
    let mut out = Vec::with_capacity(text.len() / 2);
    loop {
        while bytes.next_if(is_space).is_some() {}
        let Some(high) = bytes.next() else {
            return Some(out);
        };
        let low = bytes.next()?;
        out.push((digit(high)? << 4) | digit(low)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;

    const SEED: &str = "000102030405060708090a0b0c0d0e0f";
    const UUID: &str = "GPU-12345678-1234-1234-1234-123456789abc";
    const ROOT: &str = "1429a5da116f15834817fa84b74d67bb6097ec71c7a7796e396db2006ca06b85";
    /// P-256 group order n, big-endian.
    const ORDER: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xBC, 0xE6,
        0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ];

    fn test_key() -> SigningKey {
        SigningKey::from_slice(&[0x11; 32]).unwrap()
    }

    fn sign(message: &str) -> [u8; 64] {
        let signature: Signature = test_key().sign(message.as_bytes());
        let mut raw = [0u8; 64];
        raw.copy_from_slice(&signature.to_bytes());
        raw
    }

    /// n − s, big-endian (turns a low-S signature into its high-S twin and back).
    fn negate_s(raw: &mut [u8; 64]) {
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let diff = i16::from(ORDER[i]) - i16::from(raw[32 + i]) - borrow;
            raw[32 + i] = diff.rem_euclid(256) as u8;
            borrow = i16::from(diff < 0);
        }
    }

    #[test]
    fn vector_9_7_message_format() {
        assert_eq!(
            gpu_commitment_message(1, SEED, UUID, "R"),
            "0x1|000102030405060708090a0b0c0d0e0f|GPU-12345678-1234-1234-1234-123456789abc|R"
        );
        assert_eq!(gpu_commitment_message(26, "s", "u", "r"), "0x1a|s|u|r");
        assert_eq!(gpu_commitment_message(0, "s", "u", "r"), "0x0|s|u|r");
        assert_eq!(gpu_commitment_message(-1, "s", "u", "r"), "0x-1|s|u|r");
    }

    #[test]
    fn vector_9_7_hex_and_base64_64_bytes_are_accepted() {
        let raw: Vec<u8> = (1..=64).collect();
        let hex_text = hex::encode(&raw);
        assert_eq!(decode_signature(&hex_text).unwrap().to_vec(), raw);
        assert_eq!(decode_signature(&hex_text.to_uppercase()).unwrap().to_vec(), raw);
        let spaced: String =
            hex_text.as_bytes().chunks(2).map(|p| format!("{} ", std::str::from_utf8(p).unwrap())).collect();
        assert_eq!(decode_signature(&spaced).unwrap().to_vec(), raw);
        let b64 = STANDARD.encode(&raw);
        assert_eq!(decode_signature(&b64).unwrap().to_vec(), raw);
    }

    #[test]
    fn vector_9_7_other_lengths_and_all_zero_are_rejected() {
        assert_eq!(decode_signature(&"ab".repeat(63)), Err(SignatureFailure::WrongLength(63)));
        assert_eq!(decode_signature(&"ab".repeat(65)), Err(SignatureFailure::WrongLength(65)));
        assert_eq!(decode_signature(&STANDARD.encode([7u8; 65])), Err(SignatureFailure::WrongLength(65)));
        assert_eq!(decode_signature(&"00".repeat(64)), Err(SignatureFailure::AllZero));
        assert_eq!(decode_signature(&STANDARD.encode([0u8; 64])), Err(SignatureFailure::AllZero));
        assert_eq!(decode_signature(""), Err(SignatureFailure::WrongLength(0)));
    }

    #[test]
    fn malformed_encodings_follow_python() {
        let good = STANDARD.encode((0..64).collect::<Vec<u8>>());
        // Missing padding, trailing newline, leading space: Python strict base64 raises.
        assert_eq!(decode_signature(&good[..good.len() - 2]), Err(SignatureFailure::NotHexOrBase64));
        assert_eq!(decode_signature(&format!("{good}\n")), Err(SignatureFailure::NotHexOrBase64));
        assert_eq!(decode_signature(&format!(" {good}")), Err(SignatureFailure::NotHexOrBase64));
        // Non-canonical trailing bits are accepted by Python ('PB==' instead of 'Pw==').
        let loose = format!("{}B==", &good[..good.len() - 3]);
        assert_eq!(decode_signature(&loose).map(|r| r.len()), Ok(64));
        // A space inside a hex pair is an error (then base64 fails too).
        assert_eq!(decode_signature("0 0"), Err(SignatureFailure::NotHexOrBase64));
        assert_eq!(decode_signature("é0"), Err(SignatureFailure::NotHexOrBase64));
    }

    #[test]
    fn real_signatures_verify_including_high_s() {
        let key = test_key();
        let verifying = *key.verifying_key();
        let message = gpu_commitment_message(1, SEED, UUID, ROOT);
        let mut raw = sign(&message);
        let ok = |raw: &[u8; 64]| verify_with_key(&verifying, 1, SEED, UUID, ROOT, &hex::encode(raw));
        assert_eq!(ok(&raw), Ok(()));
        assert_eq!(verify_with_key(&verifying, 1, SEED, UUID, ROOT, &STANDARD.encode(raw)), Ok(()));
        negate_s(&mut raw);
        assert_eq!(ok(&raw), Ok(()), "high-S twin must be accepted (OpenSSL semantics)");

        // Any change to the message, root or signature fails.
        assert_eq!(verify_with_key(&verifying, 0, SEED, UUID, ROOT, &hex::encode(raw)), Err(SignatureFailure::Invalid));
        assert_eq!(
            verify_with_key(&verifying, 1, SEED, UUID, &ROOT.replace('1', "2"), &hex::encode(raw)),
            Err(SignatureFailure::Invalid)
        );
        raw[5] ^= 1;
        assert_eq!(ok(&raw), Err(SignatureFailure::Invalid));
    }

    #[test]
    fn out_of_range_scalars_and_missing_fields_are_refused() {
        let verifying = *test_key().verifying_key();
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&ORDER);
        raw[63] = 1;
        assert_eq!(
            verify_with_key(&verifying, 1, SEED, UUID, ROOT, &hex::encode(raw)),
            Err(SignatureFailure::ScalarsOutOfRange)
        );
        let mut zero_s = [0u8; 64];
        zero_s[31] = 1;
        assert_eq!(
            verify_with_key(&verifying, 1, SEED, UUID, ROOT, &hex::encode(zero_s)),
            Err(SignatureFailure::ScalarsOutOfRange)
        );
        assert_eq!(
            verify_with_key(&verifying, 1, SEED, UUID, "", "ab"),
            Err(SignatureFailure::MissingField("merkle_root"))
        );
        assert_eq!(
            verify_with_key(&verifying, 1, SEED, "", ROOT, "ab"),
            Err(SignatureFailure::MissingField("gpu uuid"))
        );
    }

    #[test]
    fn the_builtin_key_parses_and_rejects_foreign_signatures() {
        let raw = sign(&gpu_commitment_message(1, SEED, UUID, ROOT));
        assert_eq!(
            verify_gpu_commitment_signature(1, SEED, UUID, ROOT, &hex::encode(raw)),
            Err(SignatureFailure::Invalid)
        );
    }
}
