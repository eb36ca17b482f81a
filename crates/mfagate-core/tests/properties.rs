//! Properties of the primitives, over many generated inputs (proptest): TOTP accepts exactly
//! the steps in its window, sealing round-trips and refuses any change to the ciphertext or the
//! context, and no token a client can send makes verification panic or pass without the key.

use mfagate_core::jwt::{EdKey, EdKeyRing, HsSigner};
use mfagate_core::sealing::Sealer;
use mfagate_core::totp::{self, TotpParams, ALLOWED_SKEW_STEPS};
use mfagate_core::{AccessClaims, SecretBytes};
use proptest::prelude::*;

fn claims(exp: i64) -> AccessClaims {
    AccessClaims {
        sub: "user".into(),
        iat: 0,
        exp,
        jti: "id".into(),
        iss: "mfagate".into(),
        amr: vec!["pwd".into()],
        auth_time: 0,
        sid: "session".into(),
    }
}

/// A base64url character other than `c`.
fn other_char(c: char) -> char {
    if c == 'A' {
        'B'
    } else {
        'A'
    }
}

proptest! {
    #[test]
    fn totp_accepts_exactly_the_steps_in_the_window(
        secret in prop::collection::vec(any::<u8>(), 16..64),
        now in 0i64..(1i64 << 34),
        offset in -4i64..=4,
    ) {
        let params = TotpParams::default();
        let current = totp::step_at(now, params.period);
        let code = totp::code_for_step(&secret, current + offset, &params);
        let found = totp::matching_step(&secret, &code, now, &params);
        if offset.abs() <= ALLOWED_SKEW_STEPS {
            let step = found.expect("a code of the window is accepted");
            prop_assert_eq!(totp::code_for_step(&secret, step, &params), code);
        }
        // Outside the window a code is refused, unless it happens to equal a code inside it
        // (one chance in a million per step): then the step found is inside.
        if let Some(step) = found {
            prop_assert!((step - current).abs() <= ALLOWED_SKEW_STEPS);
        }
    }

    #[test]
    fn typed_codes_with_spaces_match_as_the_app_shows_them(
        secret in prop::collection::vec(any::<u8>(), 16..64),
        now in 0i64..(1i64 << 34),
        split in 0usize..6,
    ) {
        let params = TotpParams::default();
        let code = totp::code_at(&secret, now, &params);
        let typed = format!("{} {}", &code[..split], &code[split..]);
        prop_assert!(totp::matching_step(&secret, &typed, now, &params).is_some());
    }

    #[test]
    fn sealing_round_trips_and_refuses_other_contexts(
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        context in "[a-z:0-9]{1,40}",
        other in "[a-z:0-9]{1,40}",
    ) {
        let sealer = Sealer::new(&SecretBytes::new(vec![1; 32]), &[]);
        let sealed = sealer.seal(&plaintext, &context);
        prop_assert_eq!(sealer.open(&sealed, &context).ok(), Some(plaintext));
        if other != context {
            prop_assert!(sealer.open(&sealed, &other).is_err());
        }
    }

    #[test]
    fn any_change_to_a_sealed_value_is_refused(
        plaintext in prop::collection::vec(any::<u8>(), 1..128),
        at in any::<prop::sample::Index>(),
    ) {
        let sealer = Sealer::new(&SecretBytes::new(vec![2; 32]), &[]);
        let sealed = sealer.seal(&plaintext, "ctx");
        let (key_id, body) = sealed.split_once('.').unwrap();
        let mut chars: Vec<char> = body.chars().collect();
        let i = at.index(chars.len());
        chars[i] = other_char(chars[i]);
        let tampered = format!("{key_id}.{}", chars.into_iter().collect::<String>());
        prop_assert!(sealer.open(&tampered, "ctx").is_err());
    }

    #[test]
    fn no_string_verifies_as_a_token_without_the_key(token in "\\PC{0,300}") {
        let hs = HsSigner::new(SecretBytes::new(vec![7; 32]), "JWT");
        prop_assert!(hs.verify::<AccessClaims>(&token, 0).is_err());
        let ring = EdKeyRing::new(vec![EdKey::from_seed(&[9; 32], 0, None)]);
        prop_assert!(ring.verify::<AccessClaims>(&token, 0).is_err());
    }

    #[test]
    fn tokens_shaped_like_jwts_never_verify_when_changed(
        at in any::<prop::sample::Index>(),
        use_ed in any::<bool>(),
    ) {
        let hs = HsSigner::new(SecretBytes::new(vec![7; 32]), "JWT");
        let ring = EdKeyRing::new(vec![EdKey::from_seed(&[9; 32], 0, None)]);
        let token = if use_ed {
            ring.sign(&claims(i64::MAX)).unwrap()
        } else {
            hs.sign(&claims(i64::MAX)).unwrap()
        };
        let verify = |t: &str| {
            if use_ed {
                ring.verify::<AccessClaims>(t, 0).is_ok()
            } else {
                hs.verify::<AccessClaims>(t, 0).is_ok()
            }
        };
        prop_assert!(verify(&token), "the untouched token verifies");
        let mut chars: Vec<char> = token.chars().collect();
        let i = at.index(chars.len());
        if chars[i] != '.' {
            chars[i] = other_char(chars[i]);
            let changed: String = chars.into_iter().collect();
            prop_assert!(!verify(&changed), "a changed token verified");
        }
    }
}
