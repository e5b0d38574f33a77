//! Private certificate authorities for the TLS tests (SMTP, PostgreSQL, the verifier's HTTPS),
//! made with the `openssl` command: P-256 keys, valid for a day.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

/// A fresh directory under the system's temporary directory, deleted with everything in it on
/// drop, also when the test fails.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA whose certificate and key are files in a test's directory.
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (PEM): what a client is told to trust.
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    /// A fresh self-signed CA, `{name}.pem` and `{name}.key` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        openssl(&[
            &["req", "-x509", "-days", "1", "-subj"][..],
            &[&format!("/CN=authd test CA {name}")],
            &NEW_KEY,
            &["-keyout", path(&key), "-out", path(&cert)],
        ]);
        Self {
            dir: dir.to_owned(),
            cert,
            key,
        }
    }

    /// Issues a server certificate for `san` (openssl's subjectAltName syntax, e.g.
    /// `DNS:localhost,IP:127.0.0.1`); returns the paths of `{name}.pem` and `{name}.key`.
    pub fn issue(&self, name: &str, san: &str) -> (PathBuf, PathBuf) {
        let file = |ext: &str| self.dir.join(format!("{name}.{ext}"));
        let (cert, key, csr, ext) = (file("pem"), file("key"), file("csr"), file("ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        openssl(&[
            &["req", "-subj", "/CN=authd test server"][..],
            &NEW_KEY,
            &["-keyout", path(&key), "-out", path(&csr)],
        ]);
        openssl(&[
            &["x509", "-req", "-days", "1", "-in", path(&csr)][..],
            &["-CA", path(&self.cert), "-CAkey", path(&self.key)],
            &[
                "-CAcreateserial",
                "-extfile",
                path(&ext),
                "-out",
                path(&cert),
            ],
        ]);
        (cert, key)
    }
}

const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn openssl(args: &[&[&str]]) {
    let args = args.concat();
    let status = std::process::Command::new("openssl")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}
