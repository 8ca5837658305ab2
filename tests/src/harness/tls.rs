//! TLS for the harness: a throw-away certificate authority made with the
//! `openssl` command line ([`TestCertificates`]), the `redis-server`
//! arguments that serve and replicate with it, and [`TlsRedisServer`], a
//! single server with a TLS port. [`SentinelBuilder::tls`](super::SentinelBuilder::tls)
//! runs a whole Sentinel set with it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::RedisServer;

/// A throw-away CA and one server certificate it signed, for
/// `127.0.0.1`/`localhost`, in a directory of their own (removed on drop).
/// Every TLS server of a test shares them: the certificate serves, and
/// (Redis' default `tls-client-cert-file`) authenticates a node to another
/// when it replicates or, for a sentinel, monitors with TLS.
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    /// Generates the CA and the server certificate.
    ///
    /// # Panics
    ///
    /// If `openssl` is missing or fails.
    pub fn generate() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "statehouse-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        make_certificates(&dir);
        Self { dir }
    }

    /// The PEM file of the throw-away CA that signed the server's
    /// certificate: trust it to verify the server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The `redis-server` arguments that listen with TLS on `tls_port`
    /// with these certificates (clients are not asked for certificates);
    /// with `replication`, also `tls-replication yes`: a replica connects
    /// to its primary, and a sentinel to every node and sentinel, with TLS,
    /// and each announces its TLS port.
    pub fn server_args(&self, tls_port: u16, replication: bool) -> Vec<String> {
        let path = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
        let mut args = vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path("server.crt"),
            "--tls-key-file".to_owned(),
            path("server.key"),
            "--tls-ca-cert-file".to_owned(),
            path("ca.crt"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        if replication {
            args.extend(["--tls-replication".to_owned(), "yes".to_owned()]);
        }
        args
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port for a TLS listener (the kernel's pick, released
/// again: another process may take it before the server binds it).
///
/// # Panics
///
/// If no port can be bound.
pub(crate) fn free_tls_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}

/// A [`RedisServer`] with a TLS port besides its plain one (which the
/// harness uses to check readiness).
#[derive(Debug)]
pub struct TlsRedisServer {
    /// The server; its plain port answers too.
    pub server: RedisServer,
    tls_port: u16,
    certs: TestCertificates,
}

impl TlsRedisServer {
    /// Generates a CA and a server certificate for `127.0.0.1`/`localhost`,
    /// then starts `redis-server` with a TLS port (clients are not asked
    /// for certificates).
    ///
    /// # Panics
    ///
    /// If `openssl` is missing or fails, or the server does not start.
    pub fn start() -> Self {
        let certs = TestCertificates::generate();
        let tls_port = free_tls_port();
        let args = certs.server_args(tls_port, false);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = RedisServer::start_with_args(&args);
        Self {
            server,
            tls_port,
            certs,
        }
    }

    /// A `rediss://` URL of the TLS port.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// The PEM file of the throw-away CA that signed the server's
    /// certificate: trust it to verify the server.
    pub fn ca_file(&self) -> PathBuf {
        self.certs.ca_file()
    }
}

fn make_certificates(dir: &Path) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        .expect("write san.ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=statehouse-test-ca",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}); install it (e.g. `apt-get install openssl`) to run the TLS tests")
        });
        assert!(
            output.status.success(),
            "openssl {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
