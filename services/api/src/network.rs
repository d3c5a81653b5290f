//! The network spec, try mode with confirm or rollback, and link status (backed by cairn-net).

use crate::domains::unavailable;
use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::router::{Access, Route};
use cairn_core::shown::quoted;
use cairn_net::service::NetError;
use cairn_net::spec::{IpSpec, NetworkSpec, RouteSpec};
use cairn_net::Network;
use hyper::{Response, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkOp {
    Get,
    Status,
    Put,
    Confirm,
    Rollback,
    SetupGet,
    SetupPut,
}

impl NetworkOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        match self {
            NetworkOp::SetupGet | NetworkOp::SetupPut => Access::Setup,
            _ => Access::User,
        }
    }
}

use crate::router::Op::Network as N;
use NetworkOp::*;

/// The routes of this group (the OpenAPI fragment `openapi/network.json` lists the same).
pub const ROUTES: &[Route] = &[
    Route {
        path: "/api/v1/network",
        methods: &[("GET", N(Get)), ("PUT", N(Put))],
        allowed: &["GET", "PUT"],
    },
    Route {
        path: "/api/v1/network/status",
        methods: &[("GET", N(Status))],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/network/confirm",
        methods: &[("POST", N(Confirm))],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/network/rollback",
        methods: &[("POST", N(Rollback))],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/setup/network",
        methods: &[("GET", N(SetupGet)), ("PUT", N(SetupPut))],
        allowed: &["GET", "PUT"],
    },
];

fn service(ctx: &Ctx<'_>) -> Result<Arc<Network>, ApiError> {
    ctx.state
        .domains
        .network
        .clone()
        .ok_or_else(|| unavailable("network"))
}

/// Map a service error to the API's error shape.
pub fn api_error(e: NetError) -> ApiError {
    match e {
        NetError::Invalid(f) => ApiError::invalid(&format!("spec.{}", f.field), f.reason),
        NetError::NothingPending => ApiError::conflict(
            "nothing_pending",
            "no network change is waiting for confirmation",
        ),
        NetError::Timeout => ApiError::invalid("timeout_s", e.to_string()),
        other => ApiError::internal(cairn_core::boot::error_chain(&other)),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the network task failed: {e}")))?
        .map_err(api_error)
}

/// `PUT /api/v1/network`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    spec: NetworkSpec,
    /// Seconds before an unconfirmed change is rolled back (default: the node's setting).
    #[serde(default)]
    timeout_s: Option<u64>,
}

/// `PUT /api/v1/setup/network`: the management interface of the first-boot wizard.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupNetworkRequest {
    /// The physical link; absent: the one that carries the management address now (the
    /// link with the default route, which the API is most likely reached through).
    #[serde(default)]
    pub interface: Option<String>,
    /// `dhcp` or `static`.
    pub mode: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub dns: Vec<IpAddr>,
}

/// The spec the wizard's answer stands for: the factory default (DHCP on every link) with
/// the chosen interface carrying the management address.
pub fn setup_spec(base: &NetworkSpec, req: &SetupNetworkRequest) -> Result<NetworkSpec, ApiError> {
    let mut spec = base.clone();
    let wanted = match &req.interface {
        Some(i) => i.clone(),
        None => match spec.links.iter().find(|l| l.ip.management) {
            Some(l) => l.name.clone(),
            None => {
                return Err(ApiError::invalid(
                    "interface",
                    "choose the management interface",
                ))
            }
        },
    };
    let Some(i) = spec.links.iter().position(|l| l.name == wanted) else {
        return Err(ApiError::invalid(
            "interface",
            format!("this node has no link named {}", quoted(&wanted)),
        ));
    };
    for l in &mut spec.links {
        l.ip.management = false;
    }
    let ip = match req.mode.as_str() {
        "dhcp" => {
            if req.address.is_some() || req.gateway.is_some() {
                return Err(ApiError::invalid(
                    "address",
                    "DHCP takes no static address or gateway",
                ));
            }
            IpSpec {
                dhcp: true,
                addresses: vec![],
                management: true,
            }
        }
        "static" => {
            let Some(a) = &req.address else {
                return Err(ApiError::invalid(
                    "address",
                    "a static address is required (e.g. 192.0.2.10/24)",
                ));
            };
            IpSpec {
                dhcp: false,
                addresses: vec![a.clone()],
                management: true,
            }
        }
        _ => return Err(ApiError::invalid("mode", "use \"dhcp\" or \"static\"")),
    };
    spec.links[i].ip = ip;
    if let Some(gw) = req.gateway {
        spec.routes.push(RouteSpec {
            destination: "default".into(),
            gateway: gw,
            interface: Some(wanted.clone()),
            metric: None,
        });
    }
    spec.dns.servers = req.dns.clone();
    Ok(spec)
}

/// Map a spec error of the wizard's spec to the wizard's fields.
fn setup_field(e: ApiError) -> ApiError {
    let field = e.field.clone().unwrap_or_default();
    let f = if field.contains("routes") {
        "gateway"
    } else if field.contains("addresses") {
        "address"
    } else if field.contains("dns") {
        "dns"
    } else {
        "interface"
    };
    ApiError::invalid(f, e.message)
}

/// Run one operation.
pub async fn handle(ctx: &Ctx<'_>, op: NetworkOp) -> Result<Response<Body>, ApiError> {
    match op {
        Get => {
            let net = service(ctx)?;
            let view = blocking(move || net.view()).await?;
            Ok(json(StatusCode::OK, &view))
        }
        Status => {
            let net = service(ctx)?;
            let st = blocking(move || net.status()).await?;
            Ok(json(StatusCode::OK, &st))
        }
        Put => {
            let net = service(ctx)?;
            let req: PutRequest = ctx.json()?;
            let timeout = req.timeout_s.map(Duration::from_secs);
            let pending = blocking(move || net.try_apply(req.spec, timeout)).await?;
            Ok(json(StatusCode::OK, &pending))
        }
        Confirm => {
            let net = service(ctx)?;
            let spec = blocking(move || net.confirm()).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "spec": spec })))
        }
        Rollback => {
            let net = service(ctx)?;
            let report = blocking(move || net.rollback()).await?;
            Ok(json(StatusCode::OK, &report))
        }
        SetupGet => {
            crate::setup::check_setup_token(ctx)?;
            let net = service(ctx)?;
            let st = blocking(move || net.status()).await?;
            let links: Vec<_> = st
                .links
                .iter()
                .filter(|l| l.kind == "physical")
                .map(|l| {
                    serde_json::json!({
                        "name": l.name, "mac": l.mac, "carrier": l.carrier,
                        "addresses": l.addresses, "speed_mbps": l.speed_mbps,
                    })
                })
                .collect();
            let chosen = crate::setup::network_choice(ctx)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "links": links, "spec": chosen }),
            ))
        }
        SetupPut => {
            crate::setup::check_setup_token(ctx)?;
            let net = service(ctx)?;
            let req: SetupNetworkRequest = ctx.json()?;
            let n2 = Arc::clone(&net);
            // The confirmed spec, or on a fresh node the factory default (DHCP everywhere).
            let base = blocking(move || n2.view().map(|v| v.spec)).await?;
            let spec = setup_spec(&base, &req)?;
            let s2 = spec.clone();
            blocking(move || net.validate(&s2))
                .await
                .map_err(setup_field)?;
            crate::setup::set_network(ctx, spec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> NetworkSpec {
        serde_json::from_value(serde_json::json!({
            "links": [{"name": "ens3", "dhcp": true, "management": true},
                      {"name": "ens4", "dhcp": true}]
        }))
        .unwrap()
    }

    fn req(v: serde_json::Value) -> SetupNetworkRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn setup_static_moves_management_and_adds_the_default_route() {
        let s = setup_spec(
            &base(),
            &req(serde_json::json!({"interface": "ens4", "mode": "static",
                "address": "192.0.2.10/24", "gateway": "192.0.2.1", "dns": ["192.0.2.53"]})),
        )
        .unwrap();
        assert!(!s.links[0].ip.management && s.links[0].ip.dhcp);
        assert!(s.links[1].ip.management && !s.links[1].ip.dhcp);
        assert_eq!(s.links[1].ip.addresses, vec!["192.0.2.10/24"]);
        assert_eq!(s.routes[0].destination, "default");
        assert_eq!(s.dns.servers.len(), 1);
    }

    #[test]
    fn setup_errors_name_the_field() {
        let s = setup_spec(&base(), &req(serde_json::json!({"mode": "dhcp"}))).unwrap();
        assert!(s.links[0].ip.management && s.links[0].ip.dhcp);
        let e = setup_spec(
            &base(),
            &req(serde_json::json!({"interface": "eth9", "mode": "dhcp"})),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("interface"));
        let e = setup_spec(
            &base(),
            &req(serde_json::json!({"interface": "ens3", "mode": "static"})),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("address"));
        let e = setup_spec(
            &base(),
            &req(serde_json::json!({"interface": "ens3", "mode": "x"})),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("mode"));
    }
}
