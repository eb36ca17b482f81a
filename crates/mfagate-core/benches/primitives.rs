#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark: a failure is the run failing"
)]
//! Micro-benchmarks of the primitives every login touches:
//! `cargo bench -p mfagate-core --bench primitives`.

use criterion::{criterion_group, criterion_main, Criterion};
use mfagate_core::jwt::{EdKey, EdKeyRing, Expiring, HsSigner};
use mfagate_core::recovery_codes;
use mfagate_core::sealing::Sealer;
use mfagate_core::secret::SecretBytes;
use mfagate_core::totp::{self, TotpParams};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    iss: String,
    amr: Vec<String>,
}

impl Expiring for Claims {
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

fn claims() -> Claims {
    Claims {
        sub: "0123456789abcdef0123456789abcdef".into(),
        iat: 1_700_000_000,
        exp: 1_700_000_900,
        jti: "fedcba9876543210fedcba9876543210".into(),
        iss: "mfagate".into(),
        amr: vec!["pwd".into(), "mfa".into(), "otp".into()],
    }
}

fn primitives(c: &mut Criterion) {
    let secret = totp::generate_secret();
    let params = TotpParams::default();
    let now = 1_700_000_010;
    let code = totp::code_at(&secret, now, &params);
    c.bench_function("totp verify (3 steps compared)", |b| {
        b.iter(|| totp::matching_step(black_box(&secret), black_box(&code), now, &params))
    });

    let hs = HsSigner::new(SecretBytes::new(vec![7; 32]), "JWT");
    let token = hs.sign(&claims()).unwrap();
    c.bench_function("jwt HS256 sign", |b| {
        b.iter(|| hs.sign(black_box(&claims())).unwrap())
    });
    c.bench_function("jwt HS256 verify", |b| {
        b.iter(|| hs.verify::<Claims>(black_box(&token), now).unwrap())
    });

    let ring = EdKeyRing::new(vec![EdKey::generate(0)]);
    let ed_token = ring.sign(&claims()).unwrap();
    c.bench_function("jwt EdDSA sign", |b| {
        b.iter(|| ring.sign(black_box(&claims())).unwrap())
    });
    c.bench_function("jwt EdDSA verify", |b| {
        b.iter(|| ring.verify::<Claims>(black_box(&ed_token), now).unwrap())
    });

    let sealer = Sealer::new(&SecretBytes::new(vec![9; 32]), &[]);
    let sealed = sealer.seal(&secret, "totp:user");
    c.bench_function("seal a TOTP secret", |b| {
        b.iter(|| sealer.seal(black_box(&secret), "totp:user"))
    });
    c.bench_function("unseal a TOTP secret", |b| {
        b.iter(|| sealer.open(black_box(&sealed), "totp:user").unwrap())
    });

    // A recovery-code check opens and compares each of the user's 10 codes.
    let codes: Vec<String> = recovery_codes::generate_set(10)
        .iter()
        .map(|c| sealer.seal(c.as_bytes(), "recovery:user"))
        .collect();
    let typed = String::from_utf8(sealer.open(&codes[9], "recovery:user").unwrap()).unwrap();
    c.bench_function("recovery code check (10 sealed codes)", |b| {
        b.iter(|| {
            codes
                .iter()
                .filter(|stored| {
                    let plain = sealer.open(stored, "recovery:user").unwrap();
                    recovery_codes::matches(black_box(&typed), &String::from_utf8_lossy(&plain))
                })
                .count()
        })
    });
}

criterion_group!(benches, primitives);
criterion_main!(benches);
