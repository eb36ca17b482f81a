//! `mfagate.toml` and `MFAGATE_*` values: any file is taken or refused with a message, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate_server::settings::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, env) = text.split_once("\n---\n").unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (format!("MFAGATE_{}", k.to_ascii_uppercase()), v.to_string()))
        .collect();
    let _ = Settings::from_sources(Some((std::path::Path::new("fuzz.toml"), file)), env);
});
