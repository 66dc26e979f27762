//! TLS on rustls (ring provider): client configs (system roots, `--cacert`,
//! `--insecure`, `--pin-sha256`, a client certificate with `--cert`) and server
//! configs (PEM files or a self-signed certificate made at start with rcgen;
//! client certificates required with `--tls-client-ca`).
//!
//! Only configuration and handshakes live here; moving bytes is `relay`'s job.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{Error, Result, TlsFailure};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: impl Into<String>, reason: impl ToString, failure: TlsFailure) -> Error {
    Error::Tls {
        what: what.into(),
        reason: reason.to_string(),
        failure,
    }
}

fn setup_err(what: impl Into<String>, reason: impl ToString) -> Error {
    tls_err(what, reason, TlsFailure::Setup)
}

/// How a TLS client decides to trust a server.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Trust only the certificates in this PEM file (instead of the system roots).
    pub cacert: Option<PathBuf>,
    /// Accept any certificate (still checks the handshake signature).
    pub insecure: bool,
    /// Name to send in SNI and to verify the certificate against.
    pub sni: Option<String>,
    /// Accept exactly the certificate with this SHA-256 fingerprint.
    pub pin_sha256: Option<String>,
    /// ALPN protocols to offer, most preferred first (empty: no ALPN extension).
    pub alpn: Vec<Vec<u8>>,
    /// A certificate to present when the server asks for one (`--cert`, `--key`).
    pub identity: Option<ClientIdentity>,
}

/// A client certificate and its key (PEM files).
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key; `None`: the key is in the `cert` file too.
    pub key: Option<PathBuf>,
}

impl ClientIdentity {
    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let certs = read_certs(&self.cert)?;
        let key = match &self.key {
            Some(key) => read_key(key)?,
            None => read_key(&self.cert).map_err(|_| {
                setup_err(
                    format!("cannot use {}", self.cert.display()),
                    "no private key in the certificate file: give it with --key",
                )
            })?,
        };
        Ok((certs, key))
    }
}

/// A ready TLS client: connector plus the name to verify.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    /// `--pin-sha256` given: the pin check's own error is a certificate failure.
    pinned: bool,
}

impl TlsClient {
    /// Builds a client for `default_name` (the endpoint's host), overridden by `--sni`.
    pub fn new(opts: &ClientOptions, default_name: &str) -> Result<Self> {
        let name = opts.sni.as_deref().unwrap_or(default_name).to_string();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| setup_err(format!("invalid TLS server name '{name}'"), e))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup_err("cannot set up TLS", e))?;
        let builder = if opts.insecure || opts.pin_sha256.is_some() {
            let pin = match &opts.pin_sha256 {
                Some(text) => Some(parse_fingerprint(text)?),
                None => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified {
                    pin,
                    provider: provider(),
                }))
        } else if let Some(path) = &opts.cacert {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(CaFile::new(path)?))
        } else {
            builder.with_root_certificates(roots(None)?)
        };
        let mut config = match &opts.identity {
            Some(id) => {
                let (certs, key) = id.load()?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    setup_err(
                        format!("cannot use the client certificate {}", id.cert.display()),
                        e,
                    )
                })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = opts.alpn.clone();
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            pinned: opts.pin_sha256.is_some(),
        })
    }

    /// Runs the handshake over `io`.
    pub async fn connect<S>(&self, io: S) -> Result<tokio_rustls::client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self.server_name.to_str().into_owned();
        self.connector
            .connect(self.server_name.clone(), io)
            .await
            .map_err(|e| {
                handshake_error(format!("TLS handshake with {name} failed"), e, self.pinned)
            })
    }
}

/// An error reading a TLS connection after the handshake, as the error to
/// report: a server that refuses the client's certificate (or the lack of
/// one) says so with an alert that TLS 1.3 delivers only on the first read,
/// so it is told apart here as a certificate failure; anything else is
/// `what` with the I/O error.
pub fn read_error(what: impl Into<String>, e: std::io::Error) -> Error {
    use rustls::AlertDescription as A;
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|r| match r {
            rustls::Error::AlertReceived(a) => Some(*a),
            _ => None,
        });
    let reason = match alert {
        Some(A::CertificateRequired) => {
            "the server requires a client certificate: give one with --cert"
        }
        Some(A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::DecryptError) => {
            "the server refused the client certificate"
        }
        Some(A::CertificateExpired) => "the server refused the client certificate as expired",
        Some(A::CertificateRevoked) => "the server refused the client certificate as revoked",
        _ => return Error::io(what, e),
    };
    tls_err(
        what,
        format!("{reason}; {}", crate::error::describe_io(&e)),
        TlsFailure::Certificate,
    )
}

/// Wraps a failed handshake, telling a refused certificate from the rest by
/// the rustls error inside (the pin check reports through `General`).
fn handshake_error(what: String, e: std::io::Error, pinned: bool) -> Error {
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let failure = match rustls_err {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            TlsFailure::Certificate
        }
        Some(rustls::Error::General(_)) if pinned => TlsFailure::Certificate,
        _ => TlsFailure::Handshake,
    };
    let reason = match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => crate::error::describe_io(&e),
    };
    tls_err(what, reason, failure)
}

fn roots(cacert: Option<&Path>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    if let Some(path) = cacert {
        for cert in read_certs(path)? {
            store.add(cert).map_err(|e| {
                tls_err(
                    format!("bad CA certificate in {}", path.display()),
                    e,
                    TlsFailure::Certificate,
                )
            })?;
        }
        return Ok(store);
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::debug!("no system CA certificates found, using the bundled webpki roots");
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(store)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if certs.is_empty() {
        return Err(tls_err(
            format!("cannot use {}", path.display()),
            "no PEM certificate in the file",
            TlsFailure::Certificate,
        ));
    }
    Ok(certs)
}

/// SHA-256 fingerprint of a DER certificate: upper-case hex pairs joined by colons.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a fingerprint with or without colons, any case.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let bad = || {
        Error::Usage(format!(
            "invalid --pin-sha256 '{text}': expected 64 hex digits (colons allowed)"
        ))
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Accepts a certificate without a chain to a root: any (`--insecure`) or exactly the
/// pinned one. Handshake signatures are still verified, so the peer must hold the key.
#[derive(Debug)]
struct Unverified {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            Some(pin) if Sha256::digest(end_entity.as_ref()).as_slice() != pin => {
                Err(rustls::Error::General(format!(
                    "certificate fingerprint {} does not match the pinned one",
                    fingerprint(end_entity.as_ref())
                )))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `--cacert FILE`: a chain to a certificate in the file, as webpki checks
/// it; or, as curl accepts, the server's certificate itself in the file even
/// when it carries the CA flag (a plain `openssl req -x509` certificate used as
/// its own leaf, which webpki refuses as CaUsedAsEndEntity). That one is still
/// checked for the name and the validity dates, and the handshake signature.
#[derive(Debug)]
struct CaFile {
    webpki: Arc<WebPkiServerVerifier>,
    listed: Vec<CertificateDer<'static>>,
}

impl CaFile {
    fn new(path: &Path) -> Result<Self> {
        let listed = read_certs(path)?;
        let roots = roots(Some(path))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| setup_err(format!("cannot use {}", path.display()), e))?;
        Ok(CaFile { webpki, listed })
    }
}

impl ServerCertVerifier for CaFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if !self
            .listed
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp,
                now,
            );
        }
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&cert, server_name)?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
        let now = now.as_secs() as i64;
        let validity = parsed.validity();
        if now < validity.not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet,
            ));
        }
        if now > validity.not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The subject of the client's certificate (verified by the server's
/// `--tls-client-ca`), as `CN=alice, O=Example`.
pub fn peer_subject(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(parsed.subject().to_string())
}

/// Where a TLS server's certificate comes from.
#[derive(Debug, Clone)]
pub enum ServerIdentity {
    /// PEM certificate chain and private key files.
    Files {
        /// Certificate chain (leaf first).
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A fresh self-signed certificate for these names.
    SelfSigned(Vec<String>),
}

/// A ready TLS server: acceptor plus the leaf certificate's fingerprint.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    /// SHA-256 fingerprint of the leaf certificate.
    pub fingerprint: String,
}

impl TlsServer {
    /// The server side of `--tls-*` flags: `None` without an identity; with
    /// one, the config, after printing its certificate's fingerprint to
    /// stderr (`sockit: TLS certificate SHA-256 ...`) for clients to pin.
    pub fn announced(
        identity: Option<ServerIdentity>,
        client_ca: Option<&Path>,
    ) -> Result<Option<Self>> {
        let Some(id) = identity else {
            if client_ca.is_some() {
                return Err(Error::Usage(
                    "--tls-client-ca needs a TLS server: add --tls-cert/--tls-key or --tls-self-signed"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let server = Self::new(&id, client_ca)?;
        eprintln!("sockit: TLS certificate SHA-256 {}", server.fingerprint);
        Ok(Some(server))
    }

    /// Loads or generates the identity and builds the server config; with
    /// `client_ca`, clients must present a certificate signed by one in it.
    pub fn new(identity: &ServerIdentity, client_ca: Option<&Path>) -> Result<Self> {
        let (certs, key) = match identity {
            ServerIdentity::Files { cert, key } => (read_certs(cert)?, read_key(key)?),
            ServerIdentity::SelfSigned(names) => {
                let ck = rcgen::generate_simple_self_signed(names.clone())
                    .map_err(|e| setup_err("cannot generate a self-signed certificate", e))?;
                let key =
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
                (vec![ck.cert.der().clone()], key)
            }
        };
        let fingerprint = fingerprint(certs[0].as_ref());
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup_err("cannot set up TLS", e))?;
        let builder = match client_ca {
            Some(path) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(Some(path))?),
                    provider(),
                )
                .build()
                .map_err(|e| setup_err(format!("cannot use {}", path.display()), e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| setup_err("cannot use the TLS certificate and key", e))?;
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
        })
    }

    /// Runs the server side of the handshake over `io`.
    pub async fn accept<S>(&self, io: S) -> Result<tokio_rustls::server::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.acceptor
            .accept(io)
            .await
            .map_err(|e| handshake_error("TLS handshake with client failed".into(), e, false))
    }
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
        .ok_or_else(|| {
            setup_err(
                format!("cannot use {}", path.display()),
                "no PEM private key in the file",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips() {
        let fp = fingerprint(b"certificate bytes");
        assert_eq!(fp.len(), 64 + 31);
        assert_eq!(
            parse_fingerprint(&fp).unwrap().as_slice(),
            Sha256::digest(b"certificate bytes").as_slice()
        );
        let plain = fp.replace(':', "").to_lowercase();
        assert_eq!(
            parse_fingerprint(&plain).unwrap(),
            parse_fingerprint(&fp).unwrap()
        );
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }
}
