//! The README's "Verifying tokens in your API" snippets are the files in examples/verify, and
//! those files, run with real libraries (Node: jose from examples/verify/package.json; Python:
//! PyJWT + cryptography pinned in examples/verify/requirements.txt, in the venv
//! tests/support/venv.sh makes), verify a real token from a running authd for every
//! AUTHD_SIGNING_ALG and refuse a forged one. Without node or python3 these tests fail.

use std::path::{Path, PathBuf};

use authd::config::SigningAlg;
use serde_json::Value;

use crate::helpers::*;

const ALGS: [SigningAlg; 3] = [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify")
}

/// The fenced code blocks of the README section titled `title`, as (language, text).
fn readme_blocks(title: &str) -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README has a section {title:?}"));
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let (lang, body) = after.split_once('\n').unwrap();
        let close = body.find("```").expect("a closed code block");
        blocks.push((lang.trim().to_owned(), body[..close].to_owned()));
        rest = &body[close + 3..];
    }
    blocks
}

#[test]
fn the_readme_snippets_are_the_example_files() {
    let blocks = readme_blocks("Verifying tokens in your API");
    for (lang, file) in [("js", "verify.mjs"), ("python", "verify.py")] {
        let text = std::fs::read_to_string(examples().join(file)).unwrap();
        assert!(
            blocks.iter().any(|(l, b)| l == lang && *b == text),
            "README's {lang} block differs from examples/verify/{file}: copy the file into it"
        );
    }
}

/// Runs `program args...` off the async runtime (the server under test shares it), with the
/// example's environment for `app`; returns (success, stdout, stderr).
async fn run(program: &str, args: Vec<String>, app: &TestApp) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .current_dir(examples())
        .env("AUTHD_URL", &app.base)
        .env("AUTHD_ISSUER", "http://localhost:8080") // the test servers' AUTHD_ISSUER
        .env("AUTHD_AUDIENCE", "authd");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{program} must be installed to run this test: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The token with one character of its signature changed.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// For each alg: a fresh authd, a login, the example run on its token (claims printed) and on
/// a tampered one (refused).
async fn verifies_every_alg(program: &str, script: &str) {
    for alg in ALGS {
        let app = spawn_app_with(|c| c.signing_alg = alg).await;
        let t = app.signup_and_login("ann@example.test").await;
        let (ok, stdout, stderr) = run(program, vec![script.into(), t.access.clone()], &app).await;
        assert!(ok, "{script} refused the {alg} token: {stderr}");
        let claims: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(claims["sid"], t.session_id.to_string(), "{alg}");
        let (ok, _, stderr) = run(program, vec![script.into(), tampered(&t.access)], &app).await;
        assert!(!ok, "{script} accepted a tampered {alg} token");
        assert!(stderr.contains("refused"), "{stderr}");
    }
}

#[tokio::test]
async fn the_node_example_verifies_eddsa_es256_and_rs256_tokens() {
    // jose as clients/node gets it: npm ci from the committed lockfile.
    if !examples().join("node_modules/jose").exists() {
        let out = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(examples())
            .output()
            .expect("npm must be installed to run this test");
        assert!(
            out.status.success(),
            "npm ci in examples/verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    verifies_every_alg("node", "verify.mjs").await;
}

#[tokio::test]
async fn the_python_example_verifies_eddsa_es256_and_rs256_tokens() {
    let out = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/venv.sh"))
        .arg("verify")
        .output()
        .expect("bash runs tests/support/venv.sh");
    assert!(
        out.status.success(),
        "tests/support/venv.sh verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap();
    verifies_every_alg(python.trim(), "verify.py").await;
}
