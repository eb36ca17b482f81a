//! Storage, behind traits grouped by capability. Each method names one atomic intent and is
//! implemented as one conditional statement (or one transaction), so its guarantee holds for
//! any number of concurrent callers and server instances: a recovery code is consumed once, a
//! TOTP step accepted once, a refresh token rotated once, a challenge spent once.
//!
//! Times are Unix seconds, passed in by the caller: the store never reads the clock.

use crate::error::StoreError;

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything mfagate needs from a database.
pub trait Store:
    UserStore
    + FactorStore
    + RecoveryCodeStore
    + ChallengeStore
    + EmailStore
    + AdminStore
    + KeyStore
    + TokenStore
    + SessionStore
    + ThrottleStore
    + AuditStore
    + ImportStore
    + MaintenanceStore
{
}

impl<T> Store for T where
    T: UserStore
        + FactorStore
        + RecoveryCodeStore
        + ChallengeStore
        + EmailStore
        + AdminStore
        + KeyStore
        + TokenStore
        + SessionStore
        + ThrottleStore
        + AuditStore
        + ImportStore
        + MaintenanceStore
{
}

mod admin;
mod audit;
mod challenges;
mod email;
mod factors;
mod import;
mod keys;
mod maintenance;
mod recovery_codes;
mod sessions;
mod throttle;
mod tokens;
mod users;

pub use admin::*;
pub use audit::*;
pub use challenges::*;
pub use email::*;
pub use factors::*;
pub use import::*;
pub use keys::*;
pub use maintenance::*;
pub use recovery_codes::*;
pub use sessions::*;
pub use throttle::*;
pub use tokens::*;
pub use users::*;
