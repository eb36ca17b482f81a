//! `X-Forwarded-For` and `MFAGATE_TRUSTED_PROXIES`: the client address is the peer or one of the
//! listed addresses, never anything made up, and parsing never panics.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use mfagate_core::client_ip::{client_ip, parse_list, IpNet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (proxies, forwarded) = text.split_once('\n').unwrap_or((text, ""));
    let _ = IpNet::parse(proxies);
    let trusted = parse_list(proxies).unwrap_or_default();
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let ip = client_ip(peer, Some(forwarded), &trusted);
    if ip != peer {
        // Taken from the header only through a trusted peer, and only an address written in it.
        assert!(trusted.iter().any(|net| net.contains(&peer)));
        let written: Vec<IpAddr> = forwarded
            .split(',')
            .filter_map(|entry| entry.trim().parse().ok())
            .collect();
        assert!(
            written.contains(&ip),
            "{ip} is neither the peer nor in the header"
        );
    }
    let untrusting = client_ip(peer, Some(forwarded), &[]);
    assert_eq!(
        untrusting, peer,
        "without trusted proxies the header is ignored"
    );
});
