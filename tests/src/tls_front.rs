//! HTTPS in front of a test bot: a certificate authority made for the test
//! with the `openssl` command, and a TLS listener that hands each
//! connection's bytes to a plain HTTP bot, as a load balancer would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::{Result, TempDir};

/// A certificate authority and one server certificate it signed, for
/// `localhost` and `127.0.0.1`.
#[derive(Debug)]
pub struct TestCa {
    /// Holds the PEM files.
    dir: TempDir,
}

impl TestCa {
    /// Makes the authority and the server's certificate.
    pub fn create() -> Result<TestCa> {
        let dir = TempDir::new("tls")?;
        let run = |args: &[&str]| -> Result<()> {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .map_err(|e| format!("cannot run openssl: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "openssl {args:?} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
                .into());
            }
            Ok(())
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=xmpp-lambda test CA",
            ],
        ]
        .concat())?;
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat())?;
        std::fs::write(
            dir.path().join("server.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n\
             extendedKeyUsage=serverAuth\n",
        )?;
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])?;
        Ok(TestCa { dir })
    }

    /// The authority's certificate: what a client must trust
    /// (`SSL_CERT_FILE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn server_files(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        )
    }

    /// The folder of the PEM files.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A TLS listener on a free loopback port forwarding to a plain bot.
/// Dropping it stops it.
pub struct TlsFront {
    /// Where it listens.
    address: SocketAddr,
    /// TLS handshakes completed: how many connections clients opened.
    handshakes: Arc<AtomicUsize>,
    /// The accept loop.
    task: JoinHandle<()>,
}

impl TlsFront {
    /// Serves `ca`'s server certificate and forwards to `backend`.
    pub async fn start(ca: &TestCa, backend: SocketAddr) -> Result<TlsFront> {
        let (cert, key) = ca.server_files();
        let chain = CertificateDer::pem_file_iter(&cert)
            .map_err(|e| format!("server certificate: {e}"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("server certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("server key: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&handshakes);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(TlsFront {
            address,
            handshakes,
            task,
        })
    }

    /// `https://localhost:PORT/bot`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/bot", self.address.port())
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
