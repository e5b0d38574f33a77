//! Benchmark probe for bench/verifier/run.mjs (not an example to copy): with an authd at
//! AUTHD_URL (feed secret AUTHD_RESOURCE_SECRET) and a live access token in TOKEN, prints one
//! JSON line with
//! - `cost`: µs per `Verifier::verify` vs plain offline verification (jsonwebtoken with the same
//!   key and checks, no deny-list), CALLS calls each, 5 interleaved pairs, and their ratios;
//! - `memory`: VmRSS (MiB) of this process before the verifier and once its feed is ready
//!   (holding every live revocation of the snapshot), and how long the snapshot took.

use std::time::{Duration, Instant};

use authd_verifier::{Config, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

// Two workers, as in a server: the timing loops never yield, and the feed task (heartbeats) must
// keep running beside them or the verifier would rightly call its feed stale.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("AUTHD_URL").expect("AUTHD_URL");
    let secret = std::env::var("AUTHD_RESOURCE_SECRET").expect("AUTHD_RESOURCE_SECRET");
    let token = std::env::var("TOKEN").expect("TOKEN");
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20_000);

    let before = rss_mib();
    let started = Instant::now();
    let verifier = Verifier::start(Config::new(url.clone(), secret)).expect("config");
    assert!(
        verifier.wait_fresh(Duration::from_secs(600)).await,
        "feed ready"
    );
    let snapshot_ms = started.elapsed().as_secs_f64() * 1e3;
    let after = rss_mib();

    let jwks: serde_json::Value = reqwest::get(format!("{url}/.well-known/jwks.json"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let key =
        DecodingKey::from_ed_components(jwks["keys"][0]["x"].as_str().expect("x")).expect("key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[url.as_str()]);
    validation.set_audience(&["authd"]);
    validation.leeway = 5;
    let plain = || {
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("plain verify");
    };
    let time_plain = || {
        let t = Instant::now();
        for _ in 0..calls {
            plain();
        }
        t.elapsed().as_secs_f64() * 1e6 / calls as f64
    };
    let mut pairs = Vec::new();
    time_plain();
    for _ in 0..5 {
        let p = time_plain();
        let t = Instant::now();
        for _ in 0..calls {
            verifier.verify(&token).await.expect("verifier verify");
        }
        let v = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
        pairs.push(serde_json::json!({ "plain_us": p, "verifier_us": v, "ratio": v / p }));
    }
    let mut ratios: Vec<f64> = pairs
        .iter()
        .map(|p| p["ratio"].as_f64().unwrap_or(0.0))
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "cost": { "calls": calls, "pairs": pairs, "ratio_median": ratios[ratios.len() / 2] },
            "memory": { "snapshot_ms": snapshot_ms, "rss_before_mib": before,
                        "rss_after_mib": after, "rss_delta_mib": after - before },
        })
    );
}
