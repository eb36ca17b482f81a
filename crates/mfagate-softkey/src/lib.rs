//! A software passkey for mfagate's tests and benchmark: real authenticator data, client data
//! and ES256 signatures over P-256, as a platform authenticator makes them (attestation
//! "none"), answering the W3C Level 3 JSON options with what `credential.toJSON()` gives. The
//! server's tests check it against `webauthn-rs` itself (`tests/api/soft_passkey.rs`).
//!
//! Not for production: its key lives in memory, unprotected.

use data_encoding::BASE64URL_NOPAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct SoftPasskey {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    pub counter: u32,
    pub origin: String,
    pub rp_id: String,
    /// The user handle the authenticator keeps (set at registration).
    user_handle: Option<String>,
    /// Whether assertions say the user was verified (PIN, biometrics).
    pub user_verification: bool,
}

/// Minimal CBOR: what attestation objects and COSE keys use.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}
fn cbor_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        cbor_head(out, 0, v as u64)
    } else {
        cbor_head(out, 1, (-1 - v) as u64)
    }
}
fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    cbor_head(out, 2, b.len() as u64);
    out.extend(b);
}
fn cbor_text(out: &mut Vec<u8>, t: &str) {
    cbor_head(out, 3, t.len() as u64);
    out.extend(t.as_bytes());
}

impl SoftPasskey {
    pub fn new(origin: &str, rp_id: &str) -> Self {
        let mut secret = [0u8; 32];
        loop {
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            if let Ok(key) = SigningKey::from_slice(&secret) {
                let mut credential_id = vec![0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut credential_id);
                return Self {
                    key,
                    credential_id,
                    counter: 0,
                    origin: origin.into(),
                    rp_id: rp_id.into(),
                    user_handle: None,
                    user_verification: true,
                };
            }
        }
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": options["challenge"],
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    fn auth_data(&self, flags: u8, attested: Option<&[u8]>) -> Vec<u8> {
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend(self.counter.to_be_bytes());
        if let Some(attested) = attested {
            data.extend(attested);
        }
        data
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        let (x, y) = (&bytes[1..33], &bytes[33..65]);
        let mut out = Vec::new();
        cbor_head(&mut out, 5, 5);
        cbor_int(&mut out, 1);
        cbor_int(&mut out, 2); // kty: EC2
        cbor_int(&mut out, 3);
        cbor_int(&mut out, -7); // alg: ES256
        cbor_int(&mut out, -1);
        cbor_int(&mut out, 1); // crv: P-256
        cbor_int(&mut out, -2);
        cbor_bytes(&mut out, x);
        cbor_int(&mut out, -3);
        cbor_bytes(&mut out, y);
        out
    }

    /// The `PublicKeyCredential` JSON around an authenticator's `response`.
    fn credential_json(&self, response: Value) -> Value {
        json!({
            "id": B64.encode(&self.credential_id),
            "rawId": B64.encode(&self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
        })
    }

    /// `credential.toJSON()` of `navigator.credentials.create` for these creation options.
    pub fn register(&mut self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.create", options);
        self.user_handle = options["user"]["id"].as_str().map(str::to_string);
        let mut attested = vec![0u8; 16]; // AAGUID
        attested.extend((self.credential_id.len() as u16).to_be_bytes());
        attested.extend(&self.credential_id);
        attested.extend(self.cose_key());
        // UP, UV, AT.
        let auth_data = self.auth_data(0x01 | 0x04 | 0x40, Some(&attested));
        let mut object = Vec::new();
        cbor_head(&mut object, 5, 3);
        cbor_text(&mut object, "fmt");
        cbor_text(&mut object, "none");
        cbor_text(&mut object, "attStmt");
        cbor_head(&mut object, 5, 0);
        cbor_text(&mut object, "authData");
        cbor_bytes(&mut object, &auth_data);
        self.credential_json(json!({
            "clientDataJSON": B64.encode(&client_data),
            "attestationObject": B64.encode(&object),
            "transports": ["internal"],
        }))
    }

    /// `credential.toJSON()` of `navigator.credentials.get` for these request options; the
    /// counter grows by one first.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.counter += 1;
        let client_data = self.client_data("webauthn.get", options);
        let flags = if self.user_verification { 0x05 } else { 0x01 };
        let auth_data = self.auth_data(flags, None);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: DerSignature = self.key.sign(&signed);
        self.credential_json(json!({
            "clientDataJSON": B64.encode(&client_data),
            "authenticatorData": B64.encode(&auth_data),
            "signature": B64.encode(signature.as_bytes()),
            "userHandle": self.user_handle,
        }))
    }
}
