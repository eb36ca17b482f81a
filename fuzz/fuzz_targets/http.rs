//! Request bodies of every route: the routes come from the OpenAPI document (so a new route is
//! fuzzed without editing this file), the body and a few headers from the input, sent to the
//! real router over a real SQLite file, with and without a valid access token. No answer may be
//! a 5xx: bad input gets a 4xx in the contract's shape.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use mfagate::{Config, GateOptions, Keys, MfaGate, SecretBytes};
use tower::ServiceExt;

struct World {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    routes: Vec<(Method, String)>,
    access: String,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let (app, routes, access) = runtime.block_on(async {
            let store = mfagate_store::open(&url).await.unwrap();
            let keys = Keys::from_secret(SecretBytes::new(vec![5; 32]), None, Vec::new());
            let mut config = Config::default();
            // Cheap hashes: the fuzzer is after the parsing, not argon2's cost.
            config.argon2 = mfagate_core::password::Argon2Params::insecure_fast();
            let options = GateOptions {
                ip_throttle: None,
                ..GateOptions::default()
            };
            let gate = MfaGate::new(store, config, keys, options).await.unwrap();
            let app = mfagate::app(&gate);
            let mut routes = Vec::new();
            for (path, item) in gate.openapi().paths.paths {
                let path = path.replace("{id}", "fuzz");
                for (method, present) in [
                    (Method::GET, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                ] {
                    if present {
                        routes.push((method, path.clone()));
                    }
                }
            }
            let registered = app
                .clone()
                .oneshot(
                    Request::post("/auth/register")
                        .header("content-type", "application/json")
                        .body(Body::from(
                            r#"{"username":"fuzz","email":"fuzz@example.com","password":"correct horse battery"}"#,
                        ))
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = axum::body::to_bytes(registered.into_body(), 1 << 20).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let access = body["access"].as_str().unwrap().to_string();
            (app, routes, access)
        });
        World { runtime, app, routes, access, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let [route, flags, rest @ ..] = data else {
        return;
    };
    let (method, path) = &world.routes[*route as usize % world.routes.len()];
    let mut request = Request::builder().method(method.clone()).uri(path.as_str());
    if flags & 1 == 1 {
        request = request.header("authorization", format!("Bearer {}", world.access));
    }
    if flags & 2 == 2 {
        request = request.header("content-type", "application/json");
    }
    // A header of the input's own: forwarded addresses, request ids, cookies.
    let (header_value, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) if flags & 12 != 0 => (Some(&rest[..at]), &rest[at + 1..]),
        _ => (None, rest),
    };
    if let Some(value) = header_value {
        let name = match flags & 12 {
            4 => "x-forwarded-for",
            8 => "x-request-id",
            _ => "cookie",
        };
        request = request.header(name, value);
    }
    if flags & 16 == 16 {
        request = request.header("x-mfagate-cookies", "1");
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let response = world
        .runtime
        .block_on(world.app.clone().oneshot(request))
        .unwrap();
    assert!(
        !response.status().is_server_error(),
        "{method} {path} answered {}",
        response.status()
    );
});
