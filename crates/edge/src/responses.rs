//! The standard error responses of the control plane's OpenAPI document, declared once.
//!
//! Every route lists its success response and one of these sets:
//! `responses((status = 200, body = Sandbox), Errors)`. Each error is Daytona's envelope
//! ([`ErrorEnvelope`]) with the status that names it.

use cove_api_types::error::ErrorEnvelope;

/// The errors of an authenticated route: bad input, no or bad credentials, not allowed, not
/// found (or another organization's), conflicting state, body too large.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// Invalid input (malformed body, bad parameter, quota exceeded, wrong state).
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No or invalid credentials.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// Not allowed: missing permission, wrong organization context, suspended organization.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// No such resource in the caller's organization.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// Conflicting state or name.
    #[response(status = 409)]
    Conflict(ErrorEnvelope),
    /// The request body is larger than the route accepts.
    #[response(status = 413)]
    PayloadTooLarge(ErrorEnvelope),
}

/// The errors of a public route (no credentials needed).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum PublicErrors {
    /// Invalid input.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No such resource.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// The request body is larger than the route accepts.
    #[response(status = 413)]
    PayloadTooLarge(ErrorEnvelope),
}
