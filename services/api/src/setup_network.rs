//! The first-boot wizard's network step (`/api/v1/setup/network`): the node's physical links,
//! and the management interface chosen before the node is claimed.

use crate::error::ApiError;
use crate::network::NETWORK;
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::routes::{Access, Route};
use cairn_core::shown::quoted;
use cairn_net::spec::{IpSpec, NetworkSpec, RouteSpec};
use hyper::{Response, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupNetworkOp {
    Get,
    Put,
}

impl SetupNetworkOp {
    /// Who may call the operation: the wizard, before the node is claimed (the handlers check
    /// the setup token).
    pub fn access(self) -> Access {
        Access::Setup
    }
}

/// The routes of this group (the OpenAPI fragment `openapi/network.json` lists the same).
pub const ROUTES: &[Route<SetupNetworkOp>] = &[Route {
    path: "/api/v1/setup/network",
    methods: &[("GET", SetupNetworkOp::Get), ("PUT", SetupNetworkOp::Put)],
    allowed: &["GET", "PUT"],
}];

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
pub async fn handle(ctx: &Ctx<'_>, op: SetupNetworkOp) -> Result<Response<Body>, ApiError> {
    match op {
        SetupNetworkOp::Get => {
            crate::setup::check_setup_token(ctx)?;
            let net = NETWORK.service(ctx)?;
            let st = NETWORK.blocking(net, move |n| n.status()).await?;
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
        SetupNetworkOp::Put => {
            crate::setup::check_setup_token(ctx)?;
            let net = NETWORK.service(ctx)?;
            let req: SetupNetworkRequest = ctx.json()?;
            // The confirmed spec, or on a fresh node the factory default (DHCP everywhere).
            let base = NETWORK
                .blocking(Arc::clone(&net), |n| n.view().map(|v| v.spec))
                .await?;
            let spec = setup_spec(&base, &req)?;
            let checked = spec.clone();
            NETWORK
                .blocking(net, move |n| n.validate(&checked))
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
