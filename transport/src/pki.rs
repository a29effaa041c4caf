//! The cluster's certificates: one CA per cluster, one certificate per member and per operator.
//!
//! Every QUIC connection between members and every admin connection is mutual TLS against the
//! cluster CA. A peer that cannot present a certificate signed by that CA is refused during the
//! handshake, before any Raft message is read. The CA key is the root of trust of the cluster:
//! `validator init` creates it once and keeps it out of the node's own folder.
//!
//! Certificates use ECDSA P-256 (rcgen with ring, the only crypto provider in this build; see
//! toolchain.md §3 for why ring alone).

use std::path::Path;
use std::sync::Arc;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DistinguishedName;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rcgen::SanType;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// What can go wrong creating or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// A PEM certificate and its PEM private key.
#[derive(Clone)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster certificate authority.
#[derive(Clone)]
pub struct ClusterCa {
    pub cert_pem: String,
    key_pem: String,
}

/// Validity of certificates issued here, in days.
const CA_DAYS: i64 = 3650;
const MEMBER_DAYS: i64 = 1825;

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time_now();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl ClusterCa {
    /// Creates a new CA for the cluster `cluster`.
    pub fn generate(cluster: &str) -> Result<ClusterCa, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("ByteLeap validator cluster CA ({cluster})"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params, CA_DAYS);
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Loads `ca.crt` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<ClusterCa, PkiError> {
        Ok(ClusterCa { cert_pem: read(&dir.join("ca.crt"))?, key_pem: read(&dir.join("ca.key"))? })
    }

    /// Writes `ca.crt` and `ca.key` (mode 0600) to `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        write(&dir.join("ca.crt"), &self.cert_pem, false)?;
        write(&dir.join("ca.key"), &self.key_pem, true)
    }

    /// Issues a certificate for `name` (a member's name or an operator's), valid as both TLS
    /// server and client. `name` becomes the DNS name peers verify; each of `alt_names` is added
    /// as an IP address SAN if it parses as one, else as a DNS name (the hosts the member's
    /// addresses use, so admin clients can verify the host they dial).
    pub fn issue(&self, name: &str, alt_names: &[String]) -> Result<CertifiedKey, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![name.to_string()])?;
        for alt in alt_names {
            let san = match alt.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(alt.clone().try_into()?),
            };
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, MEMBER_DAYS);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(CertifiedKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path)
        .map_err(|e| PkiError::File { path: path.display().to_string(), reason: e.to_string() })
}

/// Writes a PEM file; private keys get mode 0600 and are never overwritten silently.
pub fn write(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    let err = |e: std::io::Error| PkiError::File { path: path.display().to_string(), reason: e.to_string() };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut file = options.open(path).map_err(err)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(err)
}

/// A member's (or operator's) TLS identity: the CA to trust and its own certificate and key.
pub struct TlsIdentity {
    pub ca: CertificateDer<'static>,
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The name in the certificate (first DNS SAN), used in logs.
    pub name: String,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            name: self.name.clone(),
        }
    }
}

impl TlsIdentity {
    /// Loads PEM files: the CA certificate, this member's certificate and private key.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<TlsIdentity, PkiError> {
        TlsIdentity::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
            .map_err(|e| PkiError::Tls(format!("{} / {} / {}: {e}", ca.display(), cert.display(), key.display())))
    }

    pub fn from_pem(ca: &str, cert: &str, key: &str) -> Result<TlsIdentity, PkiError> {
        let ca =
            CertificateDer::from_pem_slice(ca.as_bytes()).map_err(|e| PkiError::Tls(format!("CA certificate: {e}")))?;
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PkiError::Tls(format!("certificate: {e}")))?;
        if chain.is_empty() {
            return Err(PkiError::Tls("no certificate in the PEM file".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| PkiError::Tls(format!("private key: {e}")))?;
        let name = certificate_name(&chain[0]).unwrap_or_else(|| "unknown".into());
        Ok(TlsIdentity { ca, chain, key, name })
    }

    pub fn from_issued(ca: &ClusterCa, issued: &CertifiedKey) -> Result<TlsIdentity, PkiError> {
        TlsIdentity::from_pem(&ca.cert_pem, &issued.cert_pem, &issued.key_pem)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, PkiError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| PkiError::Tls(format!("CA certificate: {e}")))?;
        Ok(Arc::new(roots))
    }

    /// A server config that demands a client certificate signed by the cluster CA.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| PkiError::Tls(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| PkiError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| PkiError::Tls(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A client config that trusts only the cluster CA and presents this identity.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| PkiError::Tls(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| PkiError::Tls(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// The first DNS name (or the common name) of a certificate.
pub fn certificate_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                return Some((*dns).to_string());
            }
        }
    }
    parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string)
}
