//! `GET /docs`: the OpenAPI document rendered by RapiDoc, vendored in `assets/docs/` (its
//! README says where it came from), so nothing is fetched at build or run time. Served with the
//! portal's switch (`MFAGATE_UI`).

use axum::extract::State;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::link_pages::{asset_response, escape, page_response};
use crate::gate::MfaGate;

const PAGE: &str = include_str!("../../assets/docs/index.html");
const RAPIDOC: &str = include_str!("../../assets/docs/rapidoc-min.js");

/// RapiDoc styles its elements inline, so styles may be inline; scripts only from here, and
/// "try it" calls only to this server.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                      form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn router() -> OpenApiRouter<MfaGate> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(script))
}

#[utoipa::path(get, path = "/docs", tag = "pages", operation_id = "docs",
    responses((status = 200, description = "The API reference, rendered from /openapi.json", content_type = "text/html")))]
async fn page(State(gate): State<MfaGate>) -> Response {
    page_response(
        POLICY,
        PAGE.replace("{{product}}", &escape(&gate.config().product_name)),
    )
}

#[utoipa::path(get, path = "/docs/rapidoc-min.js", tag = "pages", operation_id = "docs_script",
    responses((status = 200, description = "RapiDoc 9.3.8 (MIT), vendored", content_type = "text/javascript")))]
async fn script() -> Response {
    asset_response("text/javascript; charset=utf-8", RAPIDOC)
}
