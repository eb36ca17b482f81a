//! Integration tests: the real server on a random port over a real SQLite file, spoken to over
//! HTTP. One binary, many modules, so they link once and run in parallel.

mod accounts;
mod backend;
mod browser;
mod cli;
mod conventions;
mod email;
mod factors;
mod hardening;
mod helpers;
mod instances;
mod jwks;
mod library;
mod limits;
mod link_pages;
mod logs;
mod metrics;
mod modes;
mod openapi;
mod passkeys;
mod portal;
mod query_plans;
mod remembered_devices;
mod revocation;
mod second_factor;
mod security_emails;
mod sessions;
mod smtp;
pub mod soft_passkey;
mod startup;
mod storage;
mod throttles;
mod tools;
mod totp;
