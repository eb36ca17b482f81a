//! Compact JWS (RFC 7515) with HS256, for access tokens and TOTP activation tokens.
//!
//! Hand-written because the job is small: one algorithm, fixed header, strict checks. The
//! algorithm is pinned by the verifier, never taken from the token's header (no `alg: none`, no
//! algorithm confusion), and the MAC is compared in constant time.

use hmac::{Hmac, Mac};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::SecretBytes;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token header names another algorithm or type")]
    WrongHeader,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token claims are not the expected ones")]
    BadClaims,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

/// Signs and verifies one kind of token. Each kind gets its own key and `typ`, so a token of one
/// kind can never pass as another.
pub struct HsSigner {
    key: SecretBytes,
    typ: &'static str,
}

impl std::fmt::Debug for HsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsSigner")
            .field("typ", &self.typ)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

impl HsSigner {
    pub fn new(key: SecretBytes, typ: &'static str) -> Self {
        Self { key, typ }
    }

    fn mac(&self) -> Result<HmacSha256, JwtError> {
        <HmacSha256 as Mac>::new_from_slice(self.key.expose()).map_err(|_| JwtError::BadSignature)
    }

    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        let header = Header {
            alg: "HS256".into(),
            typ: self.typ.into(),
        };
        let header = serde_json::to_vec(&header).map_err(|_| JwtError::BadClaims)?;
        let claims = serde_json::to_vec(claims).map_err(|_| JwtError::BadClaims)?;
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let mut mac = self.mac()?;
        mac.update(signing_input.as_bytes());
        let signature = mac.finalize().into_bytes();
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }

    /// Verifies header, signature and `exp` (against `now`), then returns the claims.
    pub fn verify<C: DeserializeOwned + Expiring>(
        &self,
        token: &str,
        now: i64,
    ) -> Result<C, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let decode = |part: &str| {
            data_encoding::BASE64URL_NOPAD
                .decode(part.as_bytes())
                .map_err(|_| JwtError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
        if header.alg != "HS256" || header.typ != self.typ {
            return Err(JwtError::WrongHeader);
        }
        let signature = decode(signature)?;
        let signing_input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        let signing_input = token.get(..signing_input_len).ok_or(JwtError::Malformed)?;
        let mut mac = self.mac()?;
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| JwtError::BadSignature)?;
        let claims: C =
            serde_json::from_slice(&decode(claims)?).map_err(|_| JwtError::BadClaims)?;
        if claims.expires_at() <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

pub trait Expiring {
    fn expires_at(&self) -> i64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Claims {
        sub: String,
        exp: i64,
    }
    impl Expiring for Claims {
        fn expires_at(&self) -> i64 {
            self.exp
        }
    }

    fn signer(byte: u8, typ: &'static str) -> HsSigner {
        HsSigner::new(SecretBytes::new(vec![byte; 32]), typ)
    }

    #[test]
    fn matches_the_rfc7515_style_hs256_shape_and_round_trips() {
        let s = signer(1, "JWT");
        let claims = Claims {
            sub: "u1".into(),
            exp: 200,
        };
        let token = s.sign(&claims).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(s.verify::<Claims>(&token, 100).unwrap(), claims);
        assert_eq!(s.verify::<Claims>(&token, 200), Err(JwtError::Expired));
    }

    #[test]
    fn another_key_another_type_or_a_tampered_payload_is_refused() {
        let token = signer(1, "JWT")
            .sign(&Claims {
                sub: "u1".into(),
                exp: 200,
            })
            .unwrap();
        assert_eq!(
            signer(2, "JWT").verify::<Claims>(&token, 100),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            signer(1, "other").verify::<Claims>(&token, 100),
            Err(JwtError::WrongHeader)
        );
        let forged_claims = b64(br#"{"sub":"admin","exp":200}"#);
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged_claims;
        assert_eq!(
            signer(1, "JWT").verify::<Claims>(&parts.join("."), 100),
            Err(JwtError::BadSignature)
        );
        let none_alg = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            forged_claims
        );
        assert!(signer(1, "JWT").verify::<Claims>(&none_alg, 100).is_err());
        assert_eq!(
            signer(1, "JWT").verify::<Claims>("abc", 100),
            Err(JwtError::Malformed)
        );
    }
}
