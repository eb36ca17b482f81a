//! The administrators' API: invitations and user management. Every call checks, against the
//! database, that the caller is an administrator (`403 forbidden` otherwise).

use crate::wire::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{AdminUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::ErrorBody;
use crate::wire::{
    parse_user_cursor, user_cursor, AdminUserBody, AuditEventBody, AuditEventsBody, AuditQuery,
    InvitationBody, InvitationRequest, MessageBody, PageQuery, UsersPageBody,
};
use mfagate_core::store::UserPageStart;

#[utoipa::path(post, path = "/admin/invitations", tag = "admin", operation_id = "admin_invite",
    security(("bearer" = [])), request_body = InvitationRequest,
    responses(
        (status = 201, description = "The invited account; the invitee is mailed a link to set a password", body = InvitationBody),
        (status = 400, description = "`validation_error`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an administrator", body = ErrorBody),
        (status = 409, description = "`already_exists`", body = ErrorBody),
        (status = 503, description = "`email_unavailable`: the invitation could not be mailed", body = ErrorBody),
    ))]
pub async fn invite(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    _admin: AdminUser,
    JsonBody(body): JsonBody<InvitationRequest>,
) -> ApiResult<(StatusCode, Json<InvitationBody>)> {
    let user = gate
        .gatekeeper()
        .invite(&body.email, body.username.as_deref(), &gate.context(client))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationBody {
            detail: "invitation sent",
            id: user.id,
            username: user.username,
            email: user.email,
        }),
    ))
}

#[utoipa::path(get, path = "/admin/users", tag = "admin", operation_id = "admin_list_users",
    security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of users, oldest first", body = UsersPageBody),
        (status = 400, description = "`validation_error`: `after` is not a cursor", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an administrator", body = ErrorBody),
    ))]
pub async fn list_users(
    State(gate): State<MfaGate>,
    _admin: AdminUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<UsersPageBody>> {
    let start = match &page.after {
        Some(cursor) => parse_user_cursor(cursor).ok_or_else(|| {
            mfagate_core::Error::validation("after", "is not a cursor: pass the `next` of a page")
        })?,
        None => UserPageStart::Offset(page.offset.unwrap_or(0)),
    };
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let users = gate.gatekeeper().list_users(limit, &start).await?;
    // A full page may have a successor; its cursor is the last user of this one.
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(user_cursor))
        .flatten();
    let users: Vec<AdminUserBody> = users.into_iter().map(AdminUserBody::from).collect();
    Ok(Json(UsersPageBody { users, next }))
}

/// The newest audit events, of one user (`user_id`) or of everyone.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", operation_id = "admin_audit",
    security(("bearer" = [])), params(AuditQuery),
    responses(
        (status = 200, description = "Audit events, newest first", body = AuditEventsBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an administrator", body = ErrorBody),
    ))]
pub async fn audit(
    State(gate): State<MfaGate>,
    _admin: AdminUser,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<AuditEventsBody>> {
    let events: Vec<AuditEventBody> = gate
        .gatekeeper()
        .audit_events(query.user_id.as_deref(), query.limit.unwrap_or(100))
        .await?
        .into_iter()
        .map(AuditEventBody::from)
        .collect();
    Ok(Json(AuditEventsBody { events }))
}

#[utoipa::path(post, path = "/admin/users/{id}/reset-mfa", tag = "admin", operation_id = "admin_reset_mfa",
    security(("bearer" = [])), params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user's factors and recovery codes are removed and their sessions ended", body = MessageBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an administrator", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn reset_mfa(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<MessageBody>> {
    let user = gate
        .gatekeeper()
        .admin_reset_mfa_of(&admin, &user_id, &gate.context(client))
        .await?;
    Ok(Json(MessageBody {
        detail: format!(
            "second factors of {} removed and sessions ended",
            user.username
        ),
    }))
}

async fn set_disabled(
    gate: MfaGate,
    client: ClientAddr,
    admin: mfagate_core::store::User,
    user_id: String,
    disabled: bool,
) -> ApiResult<Json<MessageBody>> {
    let user = gate
        .gatekeeper()
        .admin_set_disabled(&admin, &user_id, disabled, &gate.context(client))
        .await?;
    let what = if disabled {
        "disabled; their sessions ended"
    } else {
        "enabled"
    };
    Ok(Json(MessageBody {
        detail: format!("{} is {what}", user.username),
    }))
}

#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin", operation_id = "admin_disable",
    security(("bearer" = [])), params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user can no longer log in; their sessions are ended", body = MessageBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an administrator", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn disable(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<MessageBody>> {
    set_disabled(gate, client, admin, user_id, true).await
}

#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = "admin", operation_id = "admin_enable",
    security(("bearer" = [])), params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user can log in again", body = MessageBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an administrator", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn enable(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<MessageBody>> {
    set_disabled(gate, client, admin, user_id, false).await
}

pub(crate) fn router() -> OpenApiRouter<MfaGate> {
    OpenApiRouter::new()
        .routes(routes!(invite))
        .routes(routes!(list_users))
        .routes(routes!(audit))
        .routes(routes!(reset_mfa))
        .routes(routes!(disable))
        .routes(routes!(enable))
}
