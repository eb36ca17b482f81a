//! The pages behind the links in mfagate's e-mails (`/verify-email`, `/set-password`,
//! `/reset-password`, each with `?key=...`), so that a link works out of the box when the link
//! base URL is mfagate itself. Each page posts the key (and a new password, where one is asked
//! for) to the API on a click and says what happened; an app with its own front end serves these
//! paths itself and sets `MFAGATE_LINK_BASE_URL` to it.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::gate::MfaGate;

const PAGE: &str = include_str!("../../assets/link_page.html");
const SCRIPT: &str = include_str!("../../assets/link_page.js");

/// Where the pages' script is served (a file of its own, so the pages' policy allows no inline
/// script).
pub const SCRIPT_PATH: &str = "/mfagate-link-page.js";

/// Scripts from this origin only, requests to this origin only, no framing, no referrer: the
/// key is in the page's address.
pub(crate) const POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                      style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'; \
                      frame-ancestors 'none'";

struct Page {
    title: &'static str,
    intro: &'static str,
    button: &'static str,
    done: &'static str,
    /// The API call, under the prefix.
    api: &'static str,
    /// The body field that carries the new password, for pages that ask for one.
    password_field: Option<&'static str>,
}

const VERIFY_EMAIL: Page = Page {
    title: "Confirm your e-mail address",
    intro: "Confirm that this address is yours.",
    button: "Confirm my address",
    done: "Your e-mail address is confirmed. You can close this page.",
    api: "/register/verify-email",
    password_field: None,
};

const SET_PASSWORD: Page = Page {
    title: "Choose your password",
    intro: "You were invited. Choose the password you will log in with.",
    button: "Set my password",
    done: "Your password is set. Log in with it in the app.",
    api: "/register/set-password",
    password_field: Some("password"),
};

const RESET_PASSWORD: Page = Page {
    title: "Choose a new password",
    intro: "Choose a new password. Your second factor stays as it was.",
    button: "Reset my password",
    done: "Your password is reset, and every session was ended. Log in with the new password in the app.",
    api: "/password/reset/confirm",
    password_field: Some("new_password"),
};

/// The three pages and their script, for [`crate::app`] (or a host app's own router).
pub(crate) fn router() -> OpenApiRouter<MfaGate> {
    OpenApiRouter::new()
        .routes(routes!(verify_email))
        .routes(routes!(set_password))
        .routes(routes!(reset_password))
        .routes(routes!(script))
}

/// `?key=` from the e-mail's link; the page's script reads it from the address.
#[utoipa::path(get, path = "/verify-email", tag = "pages", operation_id = "page_verify_email",
    responses((status = 200, description = "The page behind the verification e-mail's link (`?key=`)", content_type = "text/html")))]
async fn verify_email(State(gate): State<MfaGate>) -> Response {
    render(&gate, &VERIFY_EMAIL)
}

#[utoipa::path(get, path = "/set-password", tag = "pages", operation_id = "page_set_password",
    responses((status = 200, description = "The page behind an invitation's link (`?key=`)", content_type = "text/html")))]
async fn set_password(State(gate): State<MfaGate>) -> Response {
    render(&gate, &SET_PASSWORD)
}

#[utoipa::path(get, path = "/reset-password", tag = "pages", operation_id = "page_reset_password",
    responses((status = 200, description = "The page behind the password-reset e-mail's link (`?key=`)", content_type = "text/html")))]
async fn reset_password(State(gate): State<MfaGate>) -> Response {
    render(&gate, &RESET_PASSWORD)
}

#[utoipa::path(get, path = "/mfagate-link-page.js", tag = "pages", operation_id = "page_link_script",
    responses((status = 200, description = "The link pages' script", content_type = "text/javascript")))]
async fn script() -> Response {
    script_response(SCRIPT)
}

/// A page's script: JavaScript, cached an hour, never sniffed as anything else.
pub(crate) fn script_response(script: &'static str) -> Response {
    asset_response("text/javascript; charset=utf-8", script)
}

/// A file a page loads (script, style sheet), cached an hour, never sniffed as anything else.
pub(crate) fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

fn render(gate: &MfaGate, page: &Page) -> Response {
    let prefix = gate.options().prefix.trim_end_matches('/');
    let inputs = match page.password_field {
        None => String::new(),
        Some(_) => format!(
            "<label for=\"password\">New password (at least {} characters)</label>\n  \
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"{}\">\n  \
             <label for=\"again\">The same again</label>\n  \
             <input id=\"again\" name=\"again\" type=\"password\" autocomplete=\"new-password\" required>",
            gate.config().password_min_length,
            gate.config().password_min_length,
        ),
    };
    let html = PAGE
        .replace("{{title}}", &escape(page.title))
        .replace("{{product}}", &escape(&gate.config().product_name))
        .replace("{{api}}", &escape(&format!("{prefix}{}", page.api)))
        .replace("{{done}}", &escape(page.done))
        .replace("{{fields}}", page.password_field.unwrap_or(""))
        .replace("{{intro}}", &escape(page.intro))
        .replace("{{button}}", &escape(page.button))
        .replace("{{script}}", SCRIPT_PATH)
        .replace("{{inputs}}", &inputs);
    page_response(POLICY, html)
}

/// A page: HTML under `policy`, never framed, never cached, no referrer (keys and tokens may be
/// in its address), never sniffed as anything else.
pub(crate) fn page_response(policy: &'static str, html: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(policy),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        html,
    )
        .into_response()
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
