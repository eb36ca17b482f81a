//! The software passkey (`mfagate-softkey`), checked against the relying-party library the
//! server uses: real ceremonies verify, and the mistakes the server must refuse are refused.

pub use mfagate_softkey::SoftPasskey;

#[cfg(test)]
mod tests {
    use super::SoftPasskey;
    use webauthn_rs::prelude::*;

    const ORIGIN: &str = "http://localhost:8080";

    fn relying_party(rp_id: &str, origin: &str) -> Webauthn {
        let origin = Url::parse(origin).unwrap();
        WebauthnBuilder::new(rp_id, &origin)
            .unwrap()
            .rp_name("mfagate")
            .build()
            .unwrap()
    }

    /// A registration ceremony of `key` for a new user.
    fn register(rp: &Webauthn, key: &mut SoftPasskey, name: &str) -> WebauthnResult<Passkey> {
        let (options, state) = rp.start_passkey_registration(Uuid::new_v4(), name, name, None)?;
        let options = serde_json::to_value(&options.public_key).unwrap();
        let response: RegisterPublicKeyCredential =
            serde_json::from_value(key.register(&options)).unwrap();
        rp.finish_passkey_registration(&response, &state)
    }

    fn enrolled(rp: &Webauthn, key: &mut SoftPasskey) -> Passkey {
        register(rp, key, "ann").unwrap()
    }

    fn assertion(
        rp: &Webauthn,
        key: &mut SoftPasskey,
        passkey: &Passkey,
    ) -> (PublicKeyCredential, PasskeyAuthentication) {
        let (options, state) = rp
            .start_passkey_authentication(std::slice::from_ref(passkey))
            .unwrap();
        let options = serde_json::to_value(&options.public_key).unwrap();
        (serde_json::from_value(key.assert(&options)).unwrap(), state)
    }

    #[test]
    fn a_soft_passkey_registers_and_signs_in_and_its_counter_grows() {
        let rp = relying_party("localhost", ORIGIN);
        let mut key = SoftPasskey::new(ORIGIN, "localhost");
        let mut passkey = enrolled(&rp, &mut key);
        let id: &[u8] = passkey.cred_id().as_ref();
        assert_eq!(id, key.credential_id.as_slice());
        for expected in [1, 2] {
            let (response, state) = assertion(&rp, &mut key, &passkey);
            let result = rp.finish_passkey_authentication(&response, &state).unwrap();
            assert_eq!(result.counter(), expected);
            assert!(result.user_verified());
            passkey.update_credential(&result);
        }
    }

    #[test]
    fn replays_other_origins_other_rp_ids_and_counters_that_do_not_grow_are_refused() {
        let rp = relying_party("localhost", ORIGIN);
        let mut key = SoftPasskey::new(ORIGIN, "localhost");
        let mut passkey = enrolled(&rp, &mut key);
        let (response, state) = assertion(&rp, &mut key, &passkey);
        let result = rp.finish_passkey_authentication(&response, &state).unwrap();
        passkey.update_credential(&result);
        // The same assertion against a new ceremony: another challenge.
        let (_, fresh) = rp.start_passkey_authentication(&[passkey.clone()]).unwrap();
        assert!(rp.finish_passkey_authentication(&response, &fresh).is_err());
        // A counter that goes back: a possible clone.
        key.counter = 0;
        let (response, state) = assertion(&rp, &mut key, &passkey);
        assert!(matches!(
            rp.finish_passkey_authentication(&response, &state),
            Err(WebauthnError::CredentialPossibleCompromise)
        ));
        // Another origin, another RP ID.
        let mut elsewhere = SoftPasskey::new("https://evil.example", "localhost");
        assert!(register(&rp, &mut elsewhere, "bob").is_err());
        let mut other_rp = SoftPasskey::new(ORIGIN, "example.com");
        assert!(register(&rp, &mut other_rp, "cat").is_err());
    }
}
