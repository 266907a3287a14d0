//! `kiosk-gateway admin municipality route`: which issuer serves a municipality, changed by an
//! operator with a reason, in one transaction with its `MUNICIPALITY_ROUTED` event.
//!
//! The configuration's `[[remote_issuers]]` entries say how to reach each issuer (endpoint,
//! server name, trust); the database records the route the operator decided. A start records a
//! municipality it has never routed (actor SYSTEM: the first deployment), but never changes a
//! recorded route: a configuration that routes a municipality elsewhere, or names it otherwise,
//! stops `serve` before binding until an operator has recorded the change with this command.
//! So every change of routing names who made it and why, and two replicas can never route one
//! municipality to two issuers by accident of which configuration they read.

use audit::event::{Event, Ident, MunicipalityCode, UnixMillis};

use crate::admin::{AdminError, Attribution, Change};
use crate::store::{self, Municipality, Store};

/// The endpoint of an issuer served inside the gateway's process (the embedded deployment).
pub const IN_PROCESS: &str = "in-process";

/// A route an operator asks for.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The municipality's code (6 digits with the check digit).
    pub code: &'a str,
    /// Its name as kiosks and verifiers show it; required when the municipality is new, and
    /// kept as recorded when omitted.
    pub name: Option<&'a str>,
    /// Its issuer: an `https://host:port` endpoint, or `in-process`.
    pub endpoint: &'a str,
}

/// The audit identifier of an endpoint: the endpoint itself when it is one, else its digest
/// (`sha256:` and 16 hex digits), as the start records it.
pub fn endpoint_ident(endpoint: &str) -> Ident {
    Ident::parse(endpoint).unwrap_or_else(|_| Ident::fingerprint(endpoint.as_bytes()))
}

/// A route request that passed [`RouteRequest::check`]: only such a request is recorded.
#[derive(Debug, Clone)]
pub struct CheckedRoute<'a> {
    request: RouteRequest<'a>,
    code: MunicipalityCode,
}

impl<'a> RouteRequest<'a> {
    /// Checks the request before anything is opened: a valid code, a name of 1 to 100
    /// characters without control characters, an `https://` endpoint or `in-process`.
    pub fn check(self) -> Result<CheckedRoute<'a>, AdminError> {
        let code = check(&self)?;
        Ok(CheckedRoute {
            request: self,
            code,
        })
    }
}

fn check(request: &RouteRequest<'_>) -> Result<MunicipalityCode, AdminError> {
    kiosk_document::MunicipalityCode::parse(request.code)
        .map_err(|_| AdminError::MalformedMunicipality(request.code.to_owned()))?;
    let code = MunicipalityCode::parse(request.code)
        .map_err(|_| AdminError::MalformedMunicipality(request.code.to_owned()))?;
    if let Some(name) = request.name {
        let count = name.chars().count();
        if count == 0 || count > 100 || name.chars().any(char::is_control) {
            return Err(AdminError::BadInput(
                "--name: 1 to 100 characters without control characters".into(),
            ));
        }
    }
    let endpoint = request.endpoint;
    let https = endpoint
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if !https && endpoint != IN_PROCESS {
        return Err(AdminError::BadInput(format!(
            "--endpoint: {endpoint:?} is neither https://host:port nor {IN_PROCESS}"
        )));
    }
    Ok(code)
}

/// Records `request` as the municipality's route, with its event: `Unchanged` (nothing
/// written) when it is already the route. A new municipality needs a name.
pub async fn route_municipality(
    store: &Store,
    route: &CheckedRoute<'_>,
    by: &Attribution,
    now: UnixMillis,
) -> Result<Change, AdminError> {
    let (request, code) = (&route.request, &route.code);
    let event = by.annotate(Event::municipality_routed_by(
        now,
        by.operator_ident().clone(),
        code.clone(),
        endpoint_ident(request.endpoint),
    ));
    let mut tx = store.begin_write().await?;
    // The append comes first, as in every operator command: it serialises this check and
    // write with every other gateway write.
    let appended = audit::store::append(&mut tx, &event).await?;
    let current = store::municipality(&mut tx, code.as_str()).await?;
    let wanted = match wanted_row(current.as_ref(), request, code) {
        Ok(wanted) if current.as_ref() != Some(&wanted) => wanted,
        unchanged_or_refused => {
            tx.rollback().await?;
            return unchanged_or_refused.map(|_| Change::Unchanged);
        }
    };
    store::upsert_municipality(&mut tx, &wanted).await?;
    tx.commit().await?;
    tracing::info!(
        municipality = code.as_str(),
        operator = %by.operator(),
        "municipality routed"
    );
    Ok(Change::Applied {
        event_index: appended.index,
    })
}

/// The municipality's row as `request` wants it: the name asked for or the recorded one (a
/// new municipality must be named), the kill switch kept.
fn wanted_row(
    current: Option<&Municipality>,
    request: &RouteRequest<'_>,
    code: &MunicipalityCode,
) -> Result<Municipality, AdminError> {
    let name = match (request.name, current) {
        (Some(name), _) => name.to_owned(),
        (None, Some(current)) => current.name.clone(),
        (None, None) => {
            return Err(AdminError::BadInput(format!(
                "municipality {} is new: give its --name",
                code.as_str()
            )));
        }
    };
    Ok(Municipality {
        code: code.as_str().to_owned(),
        name,
        suspended: current.is_some_and(|m| m.suspended),
        issuer_endpoint: request.endpoint.to_owned(),
    })
}
