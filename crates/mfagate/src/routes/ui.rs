//! The account portal at `/ui/` (`MFAGATE_UI`, on by default): one page of plain HTML, CSS and
//! JavaScript, embedded in the binary, that calls the public API like any client. Users
//! register, log in with every second factor or a passkey alone, enrol and remove factors, see
//! and regenerate recovery codes, end sessions and change their password there.
//!
//! Its requests ask for cookie mode (`X-Mfagate-Cookies: 1`), so the refresh token lives in an
//! HttpOnly, SameSite=Strict cookie and never in page script or storage; the access token lives
//! in a variable of the page. The policy allows scripts and styles from this origin only (no
//! inline script), images from this origin and `data:` (the TOTP QR code), and no framing.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::link_pages::escape;
use crate::gate::MfaGate;

const PAGE: &str = include_str!("../../assets/ui/index.html");
const SCRIPT: &str = include_str!("../../assets/ui/portal.js");
const STYLE: &str = include_str!("../../assets/ui/portal.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' data:; connect-src 'self'; form-action 'none'; \
                      base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn router() -> OpenApiRouter<MfaGate> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(bare))
        .routes(routes!(script))
        .routes(routes!(style))
}

#[utoipa::path(get, path = "/ui/", tag = "pages", operation_id = "portal",
    responses((status = 200, description = "The account portal", content_type = "text/html")))]
async fn page(State(gate): State<MfaGate>) -> Response {
    let prefix = gate.options().prefix.trim_end_matches('/');
    let html = PAGE
        .replace("{{product}}", &escape(&gate.config().product_name))
        .replace("{{api}}", &escape(prefix))
        .replace(
            "{{password_min}}",
            &gate.config().password_min_length.to_string(),
        );
    super::link_pages::page_response(POLICY, html)
}

/// `/ui` without the slash: the portal's relative asset paths need it.
#[utoipa::path(get, path = "/ui", tag = "pages", operation_id = "portal_redirect",
    responses((status = 308, description = "To `/ui/`")))]
async fn bare() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("/ui/"))],
    )
        .into_response()
}

#[utoipa::path(get, path = "/ui/portal.js", tag = "pages", operation_id = "portal_script",
    responses((status = 200, description = "The portal's script", content_type = "text/javascript")))]
async fn script() -> Response {
    super::link_pages::script_response(SCRIPT)
}

#[utoipa::path(get, path = "/ui/portal.css", tag = "pages", operation_id = "portal_style",
    responses((status = 200, description = "The portal's style sheet", content_type = "text/css")))]
async fn style() -> Response {
    super::link_pages::asset_response("text/css; charset=utf-8", STYLE)
}
