//! The administrators' API: invitations and user management. Every call checks, against the
//! database, that the caller is an administrator (`403 forbidden` otherwise).

use crate::wire::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::extract::{AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{AdminUserBody, InvitationRequest, PageQuery};

pub async fn invite(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<InvitationRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    gate.gatekeeper().require_admin(&auth.user_id).await?;
    let user = gate
        .gatekeeper()
        .invite(&body.email, body.username.as_deref(), &gate.context(client))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "detail": "invitation sent", "email": user.email, "id": user.id, "username": user.username }),
        ),
    ))
}

pub async fn list_users(
    State(gate): State<MfaGate>,
    auth: AuthenticatedUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    gate.gatekeeper().require_admin(&auth.user_id).await?;
    let users: Vec<AdminUserBody> = gate
        .gatekeeper()
        .list_users(page.limit.unwrap_or(100), page.offset.unwrap_or(0))
        .await?
        .into_iter()
        .map(AdminUserBody::from)
        .collect();
    Ok(Json(json!({ "users": users })))
}

pub async fn reset_mfa(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let admin = gate.gatekeeper().require_admin(&auth.user_id).await?;
    let user = gate
        .gatekeeper()
        .admin_reset_mfa_of(&admin, &user_id, &gate.context(client))
        .await?;
    Ok(Json(
        json!({ "detail": format!("second factors of {} removed and sessions ended", user.username) }),
    ))
}

async fn set_disabled(
    gate: MfaGate,
    client: ClientAddr,
    auth: AuthenticatedUser,
    user_id: String,
    disabled: bool,
) -> ApiResult<Json<Value>> {
    let admin = gate.gatekeeper().require_admin(&auth.user_id).await?;
    let user = gate
        .gatekeeper()
        .admin_set_disabled(&admin, &user_id, disabled, &gate.context(client))
        .await?;
    let what = if disabled {
        "disabled; their sessions ended"
    } else {
        "enabled"
    };
    Ok(Json(
        json!({ "detail": format!("{} is {what}", user.username) }),
    ))
}

pub async fn disable(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(gate, client, auth, user_id, true).await
}

pub async fn enable(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(gate, client, auth, user_id, false).await
}
