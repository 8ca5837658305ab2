//! A `redis-server` that also listens with TLS, using a throw-away
//! certificate authority made with the `openssl` command line.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::RedisServer;

/// A [`RedisServer`] with a TLS port besides its plain one (which the
/// harness uses to check readiness).
#[derive(Debug)]
pub struct TlsRedisServer {
    /// The server; its plain port answers too.
    pub server: RedisServer,
    tls_port: u16,
    certs: PathBuf,
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
        let certs = std::env::temp_dir().join(format!(
            "statehouse-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&certs).expect("create the certificate directory");
        make_certificates(&certs);
        let tls_port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        let path = |name: &str| certs.join(name).to_string_lossy().into_owned();
        let tls_port_arg = tls_port.to_string();
        let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
        let server = RedisServer::start_with_args(&[
            "--tls-port",
            &tls_port_arg,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]);
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
        self.certs.join("ca.crt")
    }
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.certs);
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
