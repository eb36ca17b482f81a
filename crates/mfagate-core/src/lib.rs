//! mfagate-core: the domain of mfagate, with no web framework and no SQL in it.
//!
//! - [`totp`], [`recovery_codes`], [`sealing`], [`jwt`], [`password`]: pure logic, tested
//!   against published vectors where there are any.
//! - [`webauthn`]: the passkey relying party (options out, verified answers in).
//! - [`factors`]: the kinds of second factor, their names, and the pure rules about them.
//! - [`store`]: the storage traits; every method is one atomic intent.
//! - [`service::Gatekeeper`]: the flows (register, login, second factor, enrolment, tokens).

pub mod account;
pub mod audit;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod email;
pub mod error;
pub mod factors;
pub mod jwt;
pub mod metrics;
pub mod password;
pub mod qr;
pub mod rate;
pub mod recovery_codes;
pub mod redact;
pub mod sealing;
pub mod secret;
pub mod service;
pub mod store;
pub mod throttle;
pub mod totp;
pub mod webauthn;

pub use config::{Config, JwtAlgorithm, MfaMode};
pub use error::{Error, StoreError};
pub use factors::{FactorKind, Method};
pub use secret::SecretBytes;
pub use service::{AccessClaims, Context, Gatekeeper, Keys, LoginOutcome, TokenPair};
pub use store::Store;
