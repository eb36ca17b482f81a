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
    #[error("token names a key this verifier does not know")]
    UnknownKey,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// A token split into its parts, the header decoded, nothing verified yet.
struct Parts<'a> {
    header: Header,
    signing_input: &'a str,
    claims: Vec<u8>,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    let mut pieces = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
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
    let signing_input = token
        .get(..token.len() - signature.len() - 1)
        .ok_or(JwtError::Malformed)?;
    Ok(Parts {
        header,
        signing_input,
        claims: decode(claims)?,
        signature: decode(signature)?,
    })
}

/// Parses the claims of a verified token and checks `exp`.
fn claims_after_verification<C: DeserializeOwned + Expiring>(
    parts: &Parts<'_>,
    now: i64,
) -> Result<C, JwtError> {
    let claims: C = serde_json::from_slice(&parts.claims).map_err(|_| JwtError::BadClaims)?;
    if claims.expires_at() <= now {
        return Err(JwtError::Expired);
    }
    Ok(claims)
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
            kid: None,
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
        let parts = split(token)?;
        if parts.header.alg != "HS256" || parts.header.typ != self.typ {
            return Err(JwtError::WrongHeader);
        }
        let mut mac = self.mac()?;
        mac.update(parts.signing_input.as_bytes());
        mac.verify_slice(&parts.signature)
            .map_err(|_| JwtError::BadSignature)?;
        claims_after_verification(&parts, now)
    }
}

/// One Ed25519 key: with its private half when this process signs, public only when it just
/// verifies (a key ring built from a JWKS).
#[derive(Clone)]
pub struct EdKey {
    pub kid: String,
    signing: Option<ed25519_dalek::SigningKey>,
    verifying: ed25519_dalek::VerifyingKey,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for EdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdKey")
            .field("kid", &self.kid)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl EdKey {
    /// A fresh key; its id is derived from the public key.
    pub fn generate(created_at: i64) -> Self {
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_seed(&signing.to_bytes(), created_at, None)
    }

    pub fn from_seed(seed: &[u8; 32], created_at: i64, retired_at: Option<i64>) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(seed);
        let verifying = signing.verifying_key();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(verifying.as_bytes());
        Self {
            kid: data_encoding::BASE64URL_NOPAD.encode(digest.get(..12).unwrap_or_default()),
            signing: Some(signing),
            verifying,
            created_at,
            retired_at,
        }
    }

    /// A verify-only key from its public half.
    pub fn public(kid: &str, public_key: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 32] = public_key
            .try_into()
            .map_err(|_| "an Ed25519 public key has 32 bytes".to_string())?;
        Ok(Self {
            kid: kid.to_string(),
            signing: None,
            verifying: ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|e| e.to_string())?,
            created_at: 0,
            retired_at: None,
        })
    }

    pub fn seed(&self) -> Option<[u8; 32]> {
        self.signing.as_ref().map(|k| k.to_bytes())
    }

    pub fn public_key_b64(&self) -> String {
        data_encoding::BASE64URL_NOPAD.encode(self.verifying.as_bytes())
    }

    /// The key as an RFC 8037 JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.public_key_b64(),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

/// Ed25519 keys (EdDSA, RFC 8037): the newest unretired one signs; every key whose tokens may
/// still be alive verifies and is published.
#[derive(Debug, Clone, Default)]
pub struct EdKeyRing {
    /// Newest first.
    keys: Vec<EdKey>,
}

impl EdKeyRing {
    pub fn new(mut keys: Vec<EdKey>) -> Self {
        keys.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.kid.cmp(&b.kid))
        });
        Self { keys }
    }

    /// A verify-only ring from a JWKS document (`{"keys": [...]}`); other key types are skipped.
    pub fn from_jwks(document: &serde_json::Value) -> Result<Self, String> {
        let keys = document
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("a JWKS document has a \"keys\" array")?;
        let mut ring = Vec::new();
        for key in keys {
            let field = |name: &str| key.get(name).and_then(|v| v.as_str());
            if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
                continue;
            }
            let (Some(kid), Some(x)) = (field("kid"), field("x")) else {
                continue;
            };
            let public = data_encoding::BASE64URL_NOPAD
                .decode(x.as_bytes())
                .map_err(|_| format!("key {kid}: x is not base64url"))?;
            ring.push(EdKey::public(kid, &public)?);
        }
        Ok(Self::new(ring))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// Keys whose tokens may still be alive: unretired, or retired less than `token_ttl` ago.
    pub fn published(&self, now: i64, token_ttl: i64) -> impl Iterator<Item = &EdKey> {
        self.keys
            .iter()
            .filter(move |k| k.retired_at.is_none_or(|at| at + token_ttl > now))
    }

    pub fn jwks(&self, now: i64, token_ttl: i64) -> serde_json::Value {
        serde_json::json!({ "keys": self.published(now, token_ttl).map(EdKey::jwk).collect::<Vec<_>>() })
    }

    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        use ed25519_dalek::Signer;
        let (key, signing) = self
            .keys
            .iter()
            .filter(|k| k.retired_at.is_none())
            .find_map(|k| k.signing.as_ref().map(|s| (k, s)))
            .ok_or(JwtError::UnknownKey)?;
        let header = Header {
            alg: "EdDSA".into(),
            typ: "JWT".into(),
            kid: Some(key.kid.clone()),
        };
        let header = serde_json::to_vec(&header).map_err(|_| JwtError::BadClaims)?;
        let claims = serde_json::to_vec(claims).map_err(|_| JwtError::BadClaims)?;
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let signature = signing.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", b64(&signature.to_bytes())))
    }

    pub fn verify<C: DeserializeOwned + Expiring>(
        &self,
        token: &str,
        now: i64,
    ) -> Result<C, JwtError> {
        let parts = split(token)?;
        if parts.header.alg != "EdDSA" || parts.header.typ != "JWT" {
            return Err(JwtError::WrongHeader);
        }
        let kid = parts.header.kid.as_deref().ok_or(JwtError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JwtError::UnknownKey)?;
        let signature = ed25519_dalek::Signature::from_slice(&parts.signature)
            .map_err(|_| JwtError::BadSignature)?;
        key.verifying
            .verify_strict(parts.signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;
        claims_after_verification(&parts, now)
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

    #[test]
    fn eddsa_tokens_verify_with_the_published_keys_only() {
        let old = EdKey::generate(100);
        let ring = EdKeyRing::new(vec![old.clone()]);
        let claims = Claims {
            sub: "u1".into(),
            exp: 500,
        };
        let token = ring.sign(&claims).unwrap();
        assert_eq!(ring.verify::<Claims>(&token, 200).unwrap(), claims);
        // A verifier holding only the JWKS agrees.
        let remote = EdKeyRing::from_jwks(&ring.jwks(200, 300)).unwrap();
        assert_eq!(remote.verify::<Claims>(&token, 200).unwrap(), claims);
        assert!(remote.sign(&claims).is_err(), "public keys cannot sign");

        // Rotation: the new key signs; the old one, retired, still verifies and is published
        // until its tokens have expired.
        let mut retired = old.clone();
        retired.retired_at = Some(200);
        let new = EdKey::generate(200);
        let rotated = EdKeyRing::new(vec![retired, new.clone()]);
        let fresh = rotated.sign(&claims).unwrap();
        assert!(fresh
            .split('.')
            .next()
            .map(|h| String::from_utf8(
                data_encoding::BASE64URL_NOPAD.decode(h.as_bytes()).unwrap()
            )
            .unwrap()
            .contains(&new.kid))
            .unwrap());
        assert!(rotated.verify::<Claims>(&token, 300).is_ok());
        assert_eq!(rotated.jwks(300, 900)["keys"].as_array().unwrap().len(), 2);
        assert_eq!(rotated.jwks(1200, 900)["keys"].as_array().unwrap().len(), 1);

        let stranger = EdKeyRing::new(vec![EdKey::generate(1)]);
        assert_eq!(
            stranger.verify::<Claims>(&token, 200),
            Err(JwtError::UnknownKey)
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(br#"{"sub":"admin","exp":500}"#);
        parts[1] = &forged;
        assert_eq!(
            ring.verify::<Claims>(&parts.join("."), 200),
            Err(JwtError::BadSignature)
        );
        // An HS256 token is not an EdDSA token.
        let hs = signer(1, "JWT").sign(&claims).unwrap();
        assert_eq!(ring.verify::<Claims>(&hs, 200), Err(JwtError::WrongHeader));
    }
}
