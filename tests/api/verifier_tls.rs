//! The verifier reaching authd over HTTPS: a TLS front (tokio-rustls) with a certificate from a
//! private CA stands before a real authd; a verifier told to trust that CA fetches the JWKS and
//! verifies a token, one that is not refuses the server's certificate. The example resource
//! server shows the same through the system's roots (`SSL_CERT_FILE`) and its AUTHD_CA_FILE.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use authd_verifier::{Config, Error, Verifier};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

use crate::{
    certs::{TempDir, TestCa},
    helpers::*,
    keys::{EXAMPLE_FEED_SECRET, Example, start_example_at},
};

/// TLS on 127.0.0.1 (certificate for `localhost`) in front of `upstream`, until dropped.
/// Remembers each failed handshake's error.
struct TlsFront {
    port: u16,
    failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    async fn start(cert: &std::path::Path, key: &std::path::Path, upstream: SocketAddr) -> Self {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut tls) => {
                            if let Ok(mut up) = TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                            }
                        }
                        Err(e) => seen.lock().unwrap().push(e.to_string()),
                    }
                });
            }
        });
        Self {
            port,
            failures,
            task,
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn verifier_config(url: &str, ca: Option<&std::path::Path>) -> Config {
    let mut config = Config::new(url, EXAMPLE_FEED_SECRET);
    config.issuer = "http://localhost:8080".into(); // the test servers' AUTHD_ISSUER
    config.extra_ca_pem = ca.map(|ca| std::fs::read(ca).unwrap());
    config
}

/// A real authd (with the feed) behind a [`TlsFront`] whose certificate comes from a fresh
/// private CA, and a signed-in user's tokens.
struct HttpsAuthd {
    app: TestApp,
    tokens: Tokens,
    front: TlsFront,
    /// `https://localhost:<port>`
    url: String,
    ca: TestCa,
    dir: TempDir,
}

impl HttpsAuthd {
    async fn start() -> Self {
        let app = spawn_app_with(|c| c.resource_secret = Some(EXAMPLE_FEED_SECRET.into())).await;
        wait_live(&app).await;
        let tokens = app.signup_and_login("https@example.com").await;
        let upstream: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
        let dir = TempDir::new("authd-https");
        let ca = TestCa::new(dir.path(), "ca");
        let (cert, key) = ca.issue("front", "DNS:localhost");
        let front = TlsFront::start(&cert, &key, upstream).await;
        let url = format!("https://localhost:{}", front.port);
        Self {
            app,
            tokens,
            front,
            url,
            ca,
            dir,
        }
    }

    /// The status of `GET /hello` with the user's access token on the example at `example`.
    async fn hello_status(&self, example: &Example) -> u16 {
        self.app
            .client
            .get(format!("{}/hello", example.1))
            .bearer_auth(&self.tokens.access)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn the_verifier_fetches_over_https_from_a_ca_it_is_told_to_trust_and_no_other() {
    let HttpsAuthd {
        tokens,
        front,
        url,
        ca,
        dir,
        ..
    } = &HttpsAuthd::start().await;
    let other_ca = TestCa::new(dir.path(), "other-ca");

    // Told to trust the CA: the JWKS and the feed come over HTTPS, the token verifies.
    let trusting = Verifier::start(verifier_config(url, Some(&ca.cert))).unwrap();
    assert!(
        trusting.wait_fresh(Duration::from_secs(10)).await,
        "the feed came up over HTTPS"
    );
    let claims = trusting.verify(&tokens.access).await.unwrap();
    assert_eq!(claims.sid, tokens.session_id.to_string());
    assert!(front.failures.lock().unwrap().is_empty());

    // Trusting only an unrelated CA (and the system's roots): no key can be fetched, so the
    // token is invalid, and the TLS front saw the client reject its certificate.
    let wary = Verifier::start(verifier_config(url, Some(&other_ca.cert))).unwrap();
    assert_eq!(wary.verify(&tokens.access).await, Err(Error::Invalid));
    let refused = eventually(Duration::from_secs(5), || async {
        !front.failures.lock().unwrap().is_empty()
    })
    .await;
    assert!(
        refused,
        "the verifier refused the certificate at the handshake"
    );
    let failures = front.failures.lock().unwrap().clone();
    assert!(
        failures.iter().all(|f| f.contains("UnknownCA")),
        "{failures:?}"
    );
}

#[test]
fn an_extra_ca_that_holds_no_certificate_is_a_config_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let mut config = verifier_config("https://localhost:1", None);
    config.extra_ca_pem = Some(b"not a certificate".to_vec());
    assert!(matches!(
        Verifier::start(config),
        Err(authd_verifier::ConfigError::ExtraCa(_))
    ));
}

#[tokio::test]
async fn the_example_resource_server_trusts_the_system_roots_and_its_ca_file() {
    let https = HttpsAuthd::start().await;
    let ca_path = https.ca.cert.to_str().unwrap();

    // The system's store, pointed at the private CA (rustls-platform-verifier reads
    // SSL_CERT_FILE), then the example's own option on top of the real system store.
    for env in [[("SSL_CERT_FILE", ca_path)], [("AUTHD_CA_FILE", ca_path)]] {
        let example = start_example_at(&https.url, &env).await;
        // The example waits up to 10 s for its feed; poll a little longer than that.
        let ok = eventually(Duration::from_secs(15), || async {
            https.hello_status(&example).await == 200
        })
        .await;
        assert!(ok, "the example verified a token over HTTPS with {env:?}");
    }
    // Without either, the private CA is not trusted and the token cannot be verified.
    let example = start_example_at(&https.url, &[]).await;
    assert_eq!(https.hello_status(&example).await, 401);
}
