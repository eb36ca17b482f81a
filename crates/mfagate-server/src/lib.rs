//! The `mfagate` server: settings, start-up, and the admin command line.

pub mod cli;
pub mod connections;
pub mod metrics;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::Settings;
pub use startup::Application;
