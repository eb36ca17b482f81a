//! `GET /openapi.json`: a valid OpenAPI 3.1 document (checked by `openapi-spec-validator`, an
//! independent implementation), and the server's routes and the document's operations are the
//! same set: every documented operation is answered by a handler, and every route is
//! registered through its documentation.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::spawn_app;

const FRAMEWORK_404: &str = "no such endpoint; see the API documentation";

async fn document(app: &crate::helpers::TestApp) -> Value {
    let answer = app.get("/openapi.json", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "the document is JSON"
    );
    answer.body
}

#[tokio::test]
async fn the_document_validates_with_openapi_spec_validator() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named"),
        "this test validates with openapi-spec-validator from PyPI: \
         `python3 -m pip install openapi-spec-validator` (.ci/run does this when it is missing)"
    );
    assert!(
        output.status.success(),
        "the document is not valid OpenAPI:\n{}{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn every_documented_operation_is_answered_by_a_handler() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        // Path parameters get a value that names nothing: the handler answers 401 or 404 in the
        // contract's shape, which is not the router's "no such endpoint".
        let concrete = path.replace("{id}", "no-such-id");
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let mut request = app.client.request(method.clone(), app.url(&concrete));
            if method != reqwest::Method::GET {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !(status == 404 && body.contains(FRAMEWORK_404)),
                "{method} {path} is documented but not routed"
            );
            operations += 1;
        }
    }
    // The contract's calls, the link pages, the operations and the portal.
    assert!(operations >= 40, "only {operations} operations documented");
}

#[tokio::test]
async fn every_operation_lists_its_errors_in_the_contract_shape_and_names_known_schemes() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemes: BTreeSet<&str> = doc["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(schemes.contains("bearer") && schemes.contains("refresh_cookie"));
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} used twice");
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains(scheme.as_str()),
                        "{method} {path}: unknown scheme {scheme}"
                    );
                }
            }
            if !path.starts_with("/auth/") {
                continue;
            }
            let responses = operation["responses"].as_object().unwrap();
            let errors: Vec<_> = responses.keys().filter(|s| s.as_str() >= "400").collect();
            assert!(!errors.is_empty(), "{method} {path} documents no error");
            for status in errors {
                assert_eq!(
                    responses[status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
                let described = responses[status]["description"].as_str().unwrap();
                assert!(
                    described.contains('`'),
                    "{method} {path} {status}: the description names no error code"
                );
            }
        }
    }
    // Every `$ref` names a schema that is there.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
}

/// The router side of "routes and document match": routes enter the server only through
/// `utoipa_axum::routes!`, which documents them, so no source file of the HTTP crate may add one
/// with axum's own `route`/`route_service`/`nest_service`.
#[test]
fn no_route_is_added_without_its_documentation() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../mfagate/src");
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(src)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if [".route(", ".route_service(", ".nest_service("]
                    .iter()
                    .any(|call| code.contains(call))
                {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes added without documentation (use `.routes(routes!(handler))` with a \
         `#[utoipa::path]` on the handler):\n{}",
        offenders.join("\n")
    );
}
