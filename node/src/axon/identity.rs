//! Hotkeys: SS58 addresses, sr25519 signatures, and the validator's hotkey file.
//!
//! Bittensor hotkeys are sr25519 keys (schnorrkel, signing context `b"substrate"`) written as
//! SS58 addresses with prefix 42 (chain.md §5). Every request a miner's dendrite sends is signed
//! with its hotkey over `"{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}"`
//! (byteleap-protocol.md §2.1); the axon checks it against the public key inside the SS58
//! address.

use std::path::Path;

use blake2::Blake2b512;
use blake2::Digest;

/// SS58 network prefix of Bittensor addresses (chain.md §5).
pub const SS58_PREFIX: u8 = 42;
/// Signing context of substrate sr25519 signatures (chain.md §5).
const SIGNING_CONTEXT: &[u8] = b"substrate";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not an SS58 address: {0}")]
    Address(String),
    #[error("not a valid signature: {0}")]
    Signature(String),
    #[error("the signature does not match")]
    Mismatch,
    #[error("hotkey file {path}: {reason}")]
    HotkeyFile { path: String, reason: String },
}

fn ss58_checksum(payload: &[u8]) -> [u8; 2] {
    let mut hasher = Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(payload);
    let digest = hasher.finalize();
    [digest[0], digest[1]]
}

/// The 32-byte public key inside an SS58 address (prefix 42, checksum verified).
pub fn decode_ss58(address: &str) -> Result<[u8; 32], IdentityError> {
    let bad = |why: &str| IdentityError::Address(format!("{why}: {:?}", truncate(address)));
    if address.is_empty() || address.len() > 64 {
        return Err(bad("wrong length"));
    }
    let bytes = bs58::decode(address).into_vec().map_err(|_| bad("not base58"))?;
    if bytes.len() != 35 {
        return Err(bad("wrong length"));
    }
    if bytes[0] != SS58_PREFIX {
        return Err(bad("not a Bittensor (prefix 42) address"));
    }
    if ss58_checksum(&bytes[..33]) != [bytes[33], bytes[34]] {
        return Err(bad("bad checksum"));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[1..33]);
    Ok(key)
}

/// The SS58 address (prefix 42) of a public key.
pub fn encode_ss58(public: &[u8; 32]) -> String {
    let mut payload = Vec::with_capacity(35);
    payload.push(SS58_PREFIX);
    payload.extend_from_slice(public);
    let checksum = ss58_checksum(&payload);
    payload.extend_from_slice(&checksum);
    bs58::encode(payload).into_string()
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses a `0x`-prefixed (or bare) 128-hex-character signature.
pub fn parse_signature(text: &str) -> Result<[u8; 64], IdentityError> {
    let hex_part = text.strip_prefix("0x").unwrap_or(text);
    if hex_part.len() != 128 {
        return Err(IdentityError::Signature(format!("{} hex characters, expected 128", hex_part.len())));
    }
    let mut out = [0u8; 64];
    hex::decode_to_slice(hex_part, &mut out).map_err(|e| IdentityError::Signature(e.to_string()))?;
    Ok(out)
}

/// Verifies an sr25519 signature by `signer` (an SS58 address) over `message`.
pub fn verify(signer: &str, message: &[u8], signature: &[u8; 64]) -> Result<(), IdentityError> {
    let public = decode_ss58(signer)?;
    let key = schnorrkel::PublicKey::from_bytes(&public).map_err(|e| IdentityError::Address(e.to_string()))?;
    let sig = schnorrkel::Signature::from_bytes(signature).map_err(|e| IdentityError::Signature(e.to_string()))?;
    key.verify_simple(SIGNING_CONTEXT, message, &sig).map_err(|_| IdentityError::Mismatch)
}

/// An sr25519 keypair (the validator's hotkey, or a test miner's).
pub struct Hotkey {
    keypair: schnorrkel::Keypair,
    pub ss58: String,
}

impl std::fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "Hotkey({})", self.ss58)
    }
}

impl Hotkey {
    /// From a 32-byte mini secret (a wallet's `secretSeed`), expanded as substrate does.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Hotkey, IdentityError> {
        let mini = schnorrkel::MiniSecretKey::from_bytes(seed).map_err(|e| IdentityError::Signature(e.to_string()))?;
        let keypair = mini.expand_to_keypair(schnorrkel::ExpansionMode::Ed25519);
        let ss58 = encode_ss58(&keypair.public.to_bytes());
        Ok(Hotkey { keypair, ss58 })
    }

    /// A fresh random hotkey (devnet, tests); returns it and its seed.
    pub fn generate() -> (Hotkey, [u8; 32]) {
        loop {
            let seed: [u8; 32] = rand::random();
            if let Ok(hotkey) = Hotkey::from_seed(&seed) {
                return (hotkey, seed);
            }
        }
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let context = schnorrkel::signing_context(SIGNING_CONTEXT);
        self.keypair.sign(context.bytes(message)).to_bytes()
    }

    pub fn public(&self) -> [u8; 32] {
        self.keypair.public.to_bytes()
    }

    /// Loads a bittensor hotkey file (JSON with `secretSeed`; chain.md §5). The file must not be
    /// readable by others (mode 0600 or stricter).
    pub fn load(path: &Path) -> Result<Hotkey, IdentityError> {
        let err = |reason: String| IdentityError::HotkeyFile { path: path.display().to_string(), reason };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(|e| err(e.to_string()))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(err(format!("mode {:o} lets others read the key; chmod 600 it", mode & 0o777)));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
        let seed_hex = json
            .get("secretSeed")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err("has no secretSeed (phrase-only files are not supported yet)".into()))?;
        let seed_hex = seed_hex.strip_prefix("0x").unwrap_or(seed_hex);
        let mut seed = [0u8; 32];
        hex::decode_to_slice(seed_hex, &mut seed).map_err(|_| err("secretSeed is not 32 bytes of hex".into()))?;
        let hotkey = Hotkey::from_seed(&seed)?;
        if let Some(stated) = json.get("ss58Address").and_then(|v| v.as_str())
            && stated != hotkey.ss58
        {
            return Err(err(format!("ss58Address {stated} does not match the key ({})", hotkey.ss58)));
        }
        Ok(hotkey)
    }

    /// Writes a bittensor-style hotkey file (mode 0600) for `seed`.
    pub fn write_file(path: &Path, seed: &[u8; 32]) -> Result<Hotkey, IdentityError> {
        let hotkey = Hotkey::from_seed(seed)?;
        let public = format!("0x{}", hex::encode(hotkey.public()));
        let doc = serde_json::json!({
            "accountId": public,
            "publicKey": public,
            "secretSeed": format!("0x{}", hex::encode(seed)),
            "ss58Address": hotkey.ss58,
        });
        transport::pki::write(path, &doc.to_string(), true)
            .map_err(|e| IdentityError::HotkeyFile { path: path.display().to_string(), reason: e.to_string() })?;
        Ok(hotkey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alice_round_trips() {
        // Substrate's well-known Alice address (prefix 42).
        let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
        let key = decode_ss58(alice).unwrap();
        assert_eq!(hex::encode(key), "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
        assert_eq!(encode_ss58(&key), alice);
    }

    #[test]
    fn bad_addresses_are_errors() {
        assert!(decode_ss58("").is_err());
        assert!(decode_ss58("not base58 0OIl").is_err());
        assert!(decode_ss58("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ").is_err(), "checksum");
        assert!(decode_ss58(&"5".repeat(500)).is_err());
    }

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let (hotkey, _) = Hotkey::generate();
        let message = b"1700000000000000000.5Dhotkey.5Faxon.uuid.a7ffc6";
        let sig = hotkey.sign(message);
        verify(&hotkey.ss58, message, &sig).unwrap();
        assert_eq!(verify(&hotkey.ss58, b"other", &sig), Err(IdentityError::Mismatch));
        let (other, _) = Hotkey::generate();
        assert_eq!(verify(&other.ss58, message, &sig), Err(IdentityError::Mismatch));
        let text = format!("0x{}", hex::encode(sig));
        assert_eq!(parse_signature(&text).unwrap(), sig);
        assert!(parse_signature("0x1234").is_err());
        assert!(parse_signature(&"zz".repeat(64)).is_err());
    }

    #[test]
    fn the_dev_seed_gives_the_known_address() {
        // chain.md §5: the dev phrase's mini secret (Alice's //Alice is derived; this is the
        // bare dev seed) maps to 5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV.
        let seed = hex::decode("fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e").unwrap();
        let hotkey = Hotkey::from_seed(&seed.try_into().unwrap()).unwrap();
        assert_eq!(hotkey.ss58, "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV");
    }

    #[test]
    fn hotkey_files_load_only_when_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default");
        let (_, seed) = Hotkey::generate();
        let written = Hotkey::write_file(&path, &seed).unwrap();
        let loaded = Hotkey::load(&path).unwrap();
        assert_eq!(written.ss58, loaded.ss58);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = Hotkey::load(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
    }
}
