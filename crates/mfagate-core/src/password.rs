//! Password hashing with argon2id (PHC string format).
//!
//! Hashing is CPU- and memory-heavy on purpose, so it runs on tokio's blocking pool: a login
//! never stalls the async workers that serve other requests.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
/// later than the same 32 taken two at a time, so excess hashes wait here, in order.
///
/// The queue is fair between clients: one client IP may have at most `per_ip` hashes queued or
/// running (more answer `429`), and the whole queue holds at most `max` (more answer `503`), so
/// one client's flood of registrations or logins cannot starve everyone else's logins.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<tokio::sync::Semaphore>,
    params: Argon2Params,
    queue: Arc<Mutex<Queue>>,
    per_ip: usize,
    max: usize,
}

#[derive(Debug, Default)]
struct Queue {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A place in the hash queue, given back when dropped (also when the request is cancelled).
struct Place {
    queue: Arc<Mutex<Queue>>,
    ip: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut queue = match self.queue.lock() {
            Ok(queue) => queue,
            Err(poisoned) => poisoned.into_inner(),
        };
        queue.total = queue.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(count) = queue.by_ip.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    queue.by_ip.remove(&ip);
                }
            }
        }
    }
}

impl Hasher {
    pub fn with_queue(params: Argon2Params, per_ip: usize, max: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            params,
            queue: Arc::new(Mutex::new(Queue::default())),
            per_ip: per_ip.max(1),
            max: max.max(1),
        }
    }

    /// Takes a place in the queue for a client, or says why not.
    fn enter(&self, ip: Option<IpAddr>) -> Result<Place, Error> {
        let mut queue = match self.queue.lock() {
            Ok(queue) => queue,
            Err(poisoned) => poisoned.into_inner(),
        };
        if queue.total >= self.max {
            return Err(Error::Overloaded { retry_after: 1 });
        }
        if let Some(ip) = ip {
            let mine = queue.by_ip.entry(ip).or_insert(0);
            if *mine >= self.per_ip {
                return Err(Error::Throttled { retry_after: 1 });
            }
            *mine += 1;
        }
        queue.total += 1;
        Ok(Place {
            queue: self.queue.clone(),
            ip,
        })
    }

    pub async fn hash(&self, password: String, ip: Option<IpAddr>) -> Result<String, Error> {
        let _place = self.enter(ip)?;
        let queued = std::time::Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let started = timed(queued);
        let hashed = hash_password(password, self.params).await;
        metrics::histogram!(crate::metrics::HASH_SECONDS).record(started.elapsed().as_secs_f64());
        hashed
    }

    pub async fn verify(
        &self,
        password: String,
        phc: String,
        ip: Option<IpAddr>,
    ) -> Result<bool, Error> {
        let _place = self.enter(ip)?;
        let queued = std::time::Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let started = timed(queued);
        let verified = verify_password(password, phc).await;
        metrics::histogram!(crate::metrics::HASH_SECONDS).record(started.elapsed().as_secs_f64());
        verified
    }
}

/// Records how long a hash waited for a core; the moment it got one.
fn timed(queued: std::time::Instant) -> std::time::Instant {
    let started = std::time::Instant::now();
    metrics::histogram!(crate::metrics::HASH_WAIT_SECONDS)
        .record(started.duration_since(queued).as_secs_f64());
    started
}

/// Whether a stored hash is a password hash at all (an invited user's marker is not).
pub fn is_password_hash(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok()
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

    #[tokio::test]
    async fn one_client_cannot_hold_more_than_its_share_of_the_queue() {
        let hasher = Hasher::with_queue(Argon2Params::insecure_fast(), 2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = hasher.enter(Some(a)).unwrap();
        let _second = hasher.enter(Some(a)).unwrap();
        assert!(matches!(
            hasher.enter(Some(a)),
            Err(Error::Throttled { .. })
        ));
        let _other = hasher.enter(Some(b)).unwrap();
        assert!(matches!(
            hasher.enter(Some(b)),
            Err(Error::Overloaded { .. })
        ));
        drop(first);
        let _third = hasher.enter(Some(a)).unwrap();
        assert!(hasher.hash("pw".into(), None).await.is_err());
    }

    #[test]
    fn default_cost_is_owasp() {
        let hash = hash_password_blocking("pw", &Argon2Params::default()).unwrap();
        assert!(hash.contains("m=19456,t=2,p=1"), "{hash}");
    }
}
