//! Password hashing with argon2id (PHC string format).
//!
//! Hashing is CPU- and memory-heavy on purpose, so it runs on tokio's blocking pool: a login
//! never stalls the async workers that serve other requests.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::Error;

/// argon2id cost. The default is OWASP's recommendation: 19 MiB, 2 passes, 1 lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// The cheapest parameters argon2 allows: for tests and load tests only, never production.
    pub fn insecure_fast() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// Named parameter sets: `owasp` (the default) and `low-cost` (the cheapest argon2 allows,
    /// for load tests that measure everything but the hash; never for real passwords).
    pub fn profile(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "owasp" => Some(Self::default()),
            "low-cost" => Some(Self::insecure_fast()),
            _ => None,
        }
    }

    fn hasher(&self) -> Result<Argon2<'static>, Error> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::Internal(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks the parameters once at start-up, so that a typo fails loudly there.
    pub fn validate(&self) -> Result<(), String> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map(|_| ())
            .map_err(|e| format!("invalid argon2 parameters: {e}"))
    }
}

pub fn hash_password_blocking(password: &str, params: &Argon2Params) -> Result<String, Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    params
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// Verifies with the parameters recorded in the hash itself, so raising the cost later keeps old
/// hashes working.
pub fn verify_password_blocking(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Runs argon2 on the blocking pool, at most one hash per core at a time. Argon2 is
/// memory-hard: 32 hashes of 19 MiB each fighting over two cores thrash the caches and finish
/// later than the same 32 taken two at a time, so excess logins wait here, in order.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    params: Argon2Params,
}

impl Hasher {
    pub fn new(params: Argon2Params) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
            params,
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        hash_password(password, self.params).await
    }

    pub async fn verify(&self, password: String, phc: String) -> Result<bool, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        verify_password(password, phc).await
    }
}

pub async fn hash_password(password: String, params: Argon2Params) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password, &params))
        .await
        .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))?
}

pub async fn verify_password(password: String, phc: String) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || verify_password_blocking(&password, &phc))
        .await
        .map_err(|e| Error::Internal(format!("verification task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password_blocking("correct horse", &Argon2Params::insecure_fast()).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password_blocking("correct horse", &hash));
        assert!(!verify_password_blocking("wrong horse", &hash));
        assert!(!verify_password_blocking("x", "not a phc string"));
    }

    #[test]
    fn default_cost_is_owasp() {
        let hash = hash_password_blocking("pw", &Argon2Params::default()).unwrap();
        assert!(hash.contains("m=19456,t=2,p=1"), "{hash}");
    }
}
