//! TLS for FTPS: the rustls client configuration (trust roots, the explicit
//! no-verification opt-out), one TLS session cache per control connection,
//! deadlines on every socket before its handshake, and the end of a TLS
//! upload.
//!
//! Why a session cache per control connection: servers such as vsftpd
//! (`require_ssl_reuse=YES`) accept a data connection only if it resumes the
//! TLS session of *its* control connection, and each vsftpd session is its own
//! process with its own session cache and ticket keys. A cache shared by the
//! pool's connections would offer one connection's session to another's
//! server process, which refuses it with `522` and ends the session.
//!
//! Why TLS 1.2: under TLS 1.3 every resumption spends a single-use ticket,
//! and whether a data connection brings a fresh one depends on the server:
//! ProFTPD's do not, so after the tickets of the control connection's
//! handshake are spent it refuses every data connection ("425 Unable to
//! build data connection"). A TLS 1.2 session resumes any number of times,
//! on every server. [`end_upload`] still reads an upload's data connection
//! to its end, so the server has seen the whole upload before its reply.
//!
//! Nothing here sends FTP commands.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use suppaftp::{DataStream, FtpResult, RustlsConnector, TlsConnector, TlsStream, TransferStream};

use crate::remote::{Error, Result};

/// suppaftp's rustls stream type, which it does not export by name.
pub type RustlsStream = <RustlsConnector as TlsConnector>::Stream;

/// TLS sessions kept per control connection. One server name is ever
/// used; a TLS 1.2 session resumes any number of times.
const SESSIONS_PER_CONNECTION: usize = 8;

/// How long [`end_upload`] waits for the server to close the data connection.
const UPLOAD_DRAIN_MAX: Duration = Duration::from_secs(5);

/// The client configuration of one mount: certificate checking is decided
/// once; each control connection then gets its own session cache.
pub struct TlsSetup {
    /// TLS 1.2 only (see the module comment).
    config: Arc<ClientConfig>,
}

impl TlsSetup {
    /// Trust `cafile` only when given, else the system's trust store;
    /// `no_verify` accepts any certificate (an explicit opt-out; the caller
    /// warns).
    pub fn new(cafile: Option<&Path>, no_verify: bool) -> Result<TlsSetup> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Option<Arc<dyn ServerCertVerifier>> = if no_verify {
            Some(Arc::new(AcceptAnyCertificate(provider.clone())))
        } else {
            None
        };
        let roots = match (&verifier, cafile) {
            (Some(_), _) => RootCertStore::empty(),
            (None, Some(path)) => roots_from_file(path)?,
            (None, None) => system_roots()?,
        };
        let build =
            |versions: &[&'static rustls::SupportedProtocolVersion]| -> Result<Arc<ClientConfig>> {
                let builder = ClientConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(versions)
                    .map_err(|e| Error::Setup(format!("TLS set-up: {e}")))?;
                let config = match &verifier {
                    Some(v) => builder
                        .dangerous()
                        .with_custom_certificate_verifier(v.clone())
                        .with_no_client_auth(),
                    None => builder
                        .with_root_certificates(roots.clone())
                        .with_no_client_auth(),
                };
                Ok(Arc::new(config))
            };
        Ok(TlsSetup {
            config: build(&[&rustls::version::TLS12])?,
        })
    }

    /// A connector for one control connection and its data connections:
    /// a private session cache, and `timeout` on every socket it wraps.
    pub fn connector(&self, timeout: Duration) -> TimeoutTlsConnector {
        let mut config = ClientConfig::clone(&self.config);
        config.resumption = Resumption::in_memory_sessions(SESSIONS_PER_CONNECTION);
        TimeoutTlsConnector {
            inner: RustlsConnector::from(Arc::new(config)),
            timeout,
        }
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore> {
    let bad = |e: &dyn std::fmt::Display| Error::Setup(format!("cafile {}: {e}", path.display()));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        let cert = cert.map_err(|e| bad(&e))?;
        roots.add(cert).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no PEM certificate in the file"));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("system trust store: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!("system trust store: {ignored} unusable certificates ignored");
    }
    if added == 0 {
        return Err(Error::Setup(
            "no trusted CA certificates in the system store: give one with -o cafile=PATH".into(),
        ));
    }
    Ok(roots)
}

/// Wraps suppaftp's rustls connector so that every socket gets its read and
/// write deadlines before the handshake (the implicit-TLS control socket and
/// active-mode data sockets are made inside suppaftp, out of our reach).
#[derive(Debug)]
pub struct TimeoutTlsConnector {
    inner: RustlsConnector,
    timeout: Duration,
}

impl TlsConnector for TimeoutTlsConnector {
    type Stream = RustlsStream;

    fn connect(&self, domain: &str, stream: TcpStream) -> FtpResult<RustlsStream> {
        set_deadlines(&stream, self.timeout).map_err(suppaftp::FtpError::ConnectionError)?;
        self.inner.connect(domain, stream)
    }
}

/// Read and write deadlines on a socket; a zero timeout means none.
pub fn set_deadlines(stream: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    let t = (!timeout.is_zero()).then_some(timeout);
    stream.set_read_timeout(t)?;
    stream.set_write_timeout(t)
}

/// Ends the sending side of a TLS upload and reads the data connection to its
/// end, so that the session ticket the server sent on it is kept (see the
/// module comment). Best effort: the transfer's real outcome is the reply on
/// the control connection, read afterwards.
pub fn end_upload(stream: &mut TransferStream<RustlsStream>) {
    let DataStream::Ssl(tls) = stream.get_mut() else {
        return;
    };
    let tls = tls.mut_ref();
    tls.conn.send_close_notify();
    if tls.flush().is_err() {
        return;
    }
    // The half-close tells servers that wait for TCP end-of-file, not
    // close_notify, that the upload is complete.
    let _ = tls.sock.shutdown(Shutdown::Write);
    let wait = match tls.sock.read_timeout() {
        Ok(Some(t)) => t.min(UPLOAD_DRAIN_MAX),
        _ => UPLOAD_DRAIN_MAX,
    };
    if tls.sock.set_read_timeout(Some(wait)).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
}

/// The rustls error inside an I/O error, if any, as text for the user.
pub fn tls_failure(e: &std::io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(inner.to_string())
}

/// `-o no_verify_cert`: accepts any certificate for any name, but still
/// checks that the server holds the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
