//! S8: logins with a passkey and no password (`passkey/begin`, then `passkey/finish`: the
//! ceremony taken from the database, the ES256 signature checked, the counter claimed, a session
//! opened). Each worker has a user and a software passkey of its own, enrolled over HTTP first.

use tokio::sync::Mutex;

use mfagate_softkey::SoftPasskey;
use serde_json::json;

use crate::load::{self, LevelResult};
use crate::{client, post, register, Plan};

/// A user enrolled with a passkey.
struct Holder {
    username: String,
    key: Mutex<SoftPasskey>,
}

async fn enrol(client: &reqwest::Client, base: &str, username: &str) -> Result<Holder, String> {
    let registered = register(client, base, username).await?;
    let access = registered["access"].as_str().ok_or("no token")?.to_string();
    let begun = post(
        client,
        format!("{base}/auth/mfa/factors"),
        json!({"kind": "webauthn", "name": "Key"}),
        Some(&access),
    )
    .await?;
    // The server's default origin; the software key says it comes from there.
    let mut key = SoftPasskey::new("http://localhost:8080", "localhost");
    let id = begun["factor"]["id"].as_str().ok_or("no factor id")?;
    post(
        client,
        format!("{base}/auth/mfa/factors/{id}/verify"),
        json!({"credential": key.register(&begun["options"])}),
        Some(&access),
    )
    .await?;
    Ok(Holder {
        username: username.to_string(),
        key: Mutex::new(key),
    })
}

pub async fn passkey_levels(plan: &Plan, base: &str) -> Result<Vec<LevelResult>, String> {
    let mut results = Vec::new();
    for &concurrency in &plan.levels {
        let client = client(concurrency);
        let mut holders = Vec::new();
        for worker in 0..concurrency {
            holders.push(enrol(&client, base, &format!("pk{concurrency}w{worker}")).await?);
        }
        let holders = std::sync::Arc::new(holders);
        let base = base.to_string();
        let op = std::sync::Arc::new(move |worker: usize, _: u64| {
            let (client, base, holders) = (client.clone(), base.clone(), holders.clone());
            async move {
                let holder = holders.get(worker).ok_or("no holder")?;
                let begun = post(
                    &client,
                    format!("{base}/auth/passkey/begin"),
                    json!({"username": holder.username}),
                    None,
                )
                .await?;
                let credential = holder.key.lock().await.assert(&begun["options"]);
                let tokens = post(
                    &client,
                    format!("{base}/auth/passkey/finish"),
                    json!({"passkey_token": begun["passkey_token"], "credential": credential}),
                    None,
                )
                .await?;
                Ok(tokens["access"].is_string())
            }
        });
        let result = load::run(concurrency, plan.duration, op).await;
        eprintln!(
            "  S8 passkey login c={concurrency}: {:.0}/s p50 {:.2} ms p99 {:.2} ms errors {}",
            result.per_second, result.p50_ms, result.p99_ms, result.errors
        );
        results.push(result);
    }
    Ok(results)
}
