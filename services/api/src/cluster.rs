//! The cluster (backed by cairn-cluster): status, create, join tokens, join, leave, remove a
//! node, recover from a lost quorum.

use crate::error::ApiError;
use crate::executor::{self, Domain};
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::routes::{Access, Route};
use cairn_cluster::action::ClusterTask;
use cairn_cluster::types::{
    CreateCluster, JoinCluster, RecoverCluster, TokenRequest, TOKEN_TTL_RANGE_S,
};
use cairn_cluster::{ClusterError, ClusterService};
use hyper::{Response, StatusCode};
use std::sync::Arc;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterOp {
    Status,
    Create,
    Token,
    Join,
    Leave,
    RemoveNode,
    Recover,
}

impl ClusterOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        Access::User
    }
}

use ClusterOp::*;

/// The routes of this group (the OpenAPI fragment `openapi/cluster.json` lists the same).
pub const ROUTES: &[Route<ClusterOp>] = &[
    Route {
        path: "/api/v1/cluster",
        methods: &[("GET", Status), ("POST", Create)],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/cluster/tokens",
        methods: &[("POST", Token)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/cluster/join",
        methods: &[("POST", Join)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/cluster/leave",
        methods: &[("POST", Leave)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/cluster/recover",
        methods: &[("POST", Recover)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/cluster/nodes/{name}",
        methods: &[("DELETE", RemoveNode)],
        allowed: &["DELETE"],
    },
];

/// The API error for a cluster error: a field is 422 naming it, a request that does not fit
/// the node's cluster state 409, no quorum 503 (the message names who is reachable), a
/// refused join token 403.
pub fn api_error(e: &ClusterError) -> ApiError {
    match e {
        ClusterError::Invalid { field, reason } => ApiError::invalid(field, reason.clone()),
        ClusterError::Conflict(_) => ApiError::conflict("conflict", e.to_string()),
        ClusterError::NoQuorum { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_quorum", e.to_string())
        }
        ClusterError::TokenRefused(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "token_refused", e.to_string())
        }
        // The joining node saw no member with the token's CA: nothing secret was sent.
        ClusterError::CaMismatch { .. } => ApiError::conflict("ca_mismatch", e.to_string()),
        // etcd or another member did not answer in time: the cluster is unavailable from here.
        ClusterError::Etcd { .. }
        | ClusterError::EtcdOp(_)
        | ClusterError::Peer { .. }
        | ClusterError::Timeout { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            cairn_core::boot::error_chain(e),
        ),
        ClusterError::Certificates(_)
        | ClusterError::Files(_)
        | ClusterError::EtcdConf(_)
        | ClusterError::DataDir { .. }
        | ClusterError::Service { .. }
        | ClusterError::Record { .. }
        | ClusterError::Runtime(_)
        | ClusterError::DrbdSide { .. }
        | ClusterError::Drbd { .. } => ApiError::internal(cairn_core::boot::error_chain(e)),
    }
}

/// How the API reaches the cluster service.
pub const CLUSTER: Domain<ClusterService, ClusterError> = Domain {
    name: "cluster",
    slot: |d| &d.cluster,
    api_error: |e| api_error(&e),
};

/// A cluster name: 1–63 of `a-z 0-9 -`, starting with a letter (the shape only; the
/// service decides the rest).
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > 63 {
        return Err(ApiError::invalid(
            field,
            format!("give 1 to 63 characters ({} given)", name.chars().count()),
        ));
    }
    if !ok_chars || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(ApiError::invalid(
            field,
            "use lowercase letters, digits and '-', starting with a letter",
        ));
    }
    Ok(())
}

/// A join token's lifetime must be within [`TOKEN_TTL_RANGE_S`].
pub fn check_ttl(field: &str, req: &TokenRequest) -> Result<(), ApiError> {
    match req.ttl_s {
        Some(t) if !TOKEN_TTL_RANGE_S.contains(&t) => Err(ApiError::invalid(
            field,
            format!(
                "a join token lives {} to {} seconds ({t} given)",
                TOKEN_TTL_RANGE_S.start(),
                TOKEN_TTL_RANGE_S.end()
            ),
        )),
        _ => Ok(()),
    }
}

/// Check `task` with the service, then run it (202 with the task's view).
async fn check_then_run(
    ctx: &Ctx<'_>,
    cluster: Arc<ClusterService>,
    task: ClusterTask,
) -> Result<Response<Body>, ApiError> {
    executor::check_then_run(&CLUSTER, ctx, cluster, move |s| task.check(s)).await
}

/// Run one operation.
pub async fn handle(ctx: &Ctx<'_>, op: ClusterOp) -> Result<Response<Body>, ApiError> {
    let cluster = CLUSTER.service(ctx)?;
    match op {
        Status => {
            let status = CLUSTER.inline(&cluster, |c| Ok(c.status()))?;
            Ok(json(StatusCode::OK, &status))
        }
        Create => {
            let req: CreateCluster = ctx.json()?;
            check_name("name", &req.name)?;
            check_then_run(ctx, cluster, ClusterTask::Create(req)).await
        }
        Token => {
            let req: TokenRequest = ctx.json()?;
            check_ttl("ttl_s", &req)?;
            let token = CLUSTER
                .blocking(cluster, move |c| c.issue_token(req))
                .await?;
            Ok(json(StatusCode::CREATED, &token))
        }
        Join => {
            let req: JoinCluster = ctx.json()?;
            check_then_run(ctx, cluster, ClusterTask::Join(req)).await
        }
        Leave => check_then_run(ctx, cluster, ClusterTask::Leave).await,
        RemoveNode => {
            let node = ctx.param().to_string();
            check_then_run(ctx, cluster, ClusterTask::Remove { node }).await
        }
        Recover => {
            let req: RecoverCluster = ctx.json()?;
            check_then_run(ctx, cluster, ClusterTask::Recover(req)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domains::Slot;
    use crate::test_server::{claimed_state, serve, TestServer};
    use cairn_cluster::service::{ClusterPaths, LocalNames};
    use cairn_cluster::types::NameInventory;
    use cairn_cluster::ClusterService;
    use hyper::Method;
    use serde_json::json;
    use std::sync::Arc;

    struct NoNames;

    impl LocalNames for NoNames {
        fn names(&self) -> NameInventory {
            NameInventory::default()
        }
        fn addresses(&self) -> Vec<std::net::IpAddr> {
            vec!["10.77.0.11".parse().unwrap()]
        }
    }

    /// A claimed node whose cluster slot is `slot` (`None`: a ready service).
    async fn start(slot: Option<Slot<ClusterService>>) -> (TestServer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut state = claimed_state(dir.path());
        state.domains.cluster = slot.unwrap_or_else(|| {
            let paths = ClusterPaths {
                dir: dir.path().join("cluster"),
                etcd_data: dir.path().join("etcd"),
            };
            Slot::ready(Arc::new(
                ClusterService::open(paths, "cairn-abc123", Arc::new(NoNames)).unwrap(),
            ))
        });
        (serve(state).await, dir)
    }

    #[tokio::test]
    async fn status_of_a_standalone_node() {
        let (api, _dir) = start(None).await;
        let r = api.call(Method::GET, "/api/v1/cluster", None).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let v = r.json();
        assert_eq!(v["mode"], "standalone");
        assert_eq!(v["this_node"], "cairn-abc123");
        assert_eq!(v["cluster"], json!(null));
        assert_eq!(v["nodes"], json!([]));
    }

    #[tokio::test]
    async fn bad_requests_name_the_field_and_start_nothing() {
        let (api, _dir) = start(None).await;
        for (path, body, field, status) in [
            (
                "/api/v1/cluster",
                json!({"name": "Prod!", "address": "10.0.0.1"}),
                "name",
                422,
            ),
            (
                "/api/v1/cluster",
                json!({"name": "", "address": "10.0.0.1"}),
                "name",
                422,
            ),
            (
                "/api/v1/cluster",
                json!({"name": "prod", "address": "not-an-ip"}),
                "address",
                400,
            ),
            ("/api/v1/cluster/tokens", json!({"ttl_s": 5}), "ttl_s", 422),
            (
                "/api/v1/cluster/tokens",
                json!({"ttl_s": 100_000}),
                "ttl_s",
                422,
            ),
            (
                "/api/v1/cluster/join",
                json!({"address": "10.0.0.2"}),
                "token",
                400,
            ),
            (
                "/api/v1/cluster/join",
                json!({"token": "x", "address": "10.0.0.2", "witness": "yes"}),
                "witness",
                400,
            ),
        ] {
            let r = api.call(Method::POST, path, Some(body.clone())).await;
            assert_eq!(
                (r.status.as_u16(), r.json()["field"].clone()),
                (status, json!(field)),
                "{path} {body}: {:?}",
                r.json()
            );
        }
        assert!(api.state.tasks.list().is_empty(), "no task started");
    }

    #[tokio::test]
    async fn recover_is_refused_on_a_standalone_node_and_names_a_bad_field() {
        let (api, _dir) = start(None).await;
        let r = api
            .call(Method::POST, "/api/v1/cluster/recover", Some(json!({})))
            .await;
        assert_eq!(r.status, 409, "{:?}", r.json());
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("not in a cluster"),
            "{:?}",
            r.json()
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/cluster/recover",
                Some(json!({"snapshot": 5})),
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["field"], "snapshot");
        assert!(api.state.tasks.list().is_empty(), "no task started");
    }

    #[tokio::test]
    async fn service_errors_map_to_their_statuses() {
        use super::api_error;
        use cairn_cluster::ClusterError as E;
        let cases = [
            (
                E::Invalid {
                    field: "address",
                    reason: "not one of this node's addresses".into(),
                },
                422,
                "invalid",
            ),
            (E::Conflict("already a member".into()), 409, "conflict"),
            (
                E::NoQuorum {
                    reachable: vec!["a".into()],
                    voters: vec!["a".into(), "b".into(), "c".into()],
                },
                503,
                "no_quorum",
            ),
            (E::TokenRefused("spent".into()), 403, "token_refused"),
        ];
        for (e, status, code) in cases {
            let a = api_error(&e);
            assert_eq!((a.status.as_u16(), a.code), (status, code), "{e}");
        }
        let a = api_error(&E::Invalid {
            field: "address",
            reason: "x".into(),
        });
        assert_eq!(a.field.as_deref(), Some("address"));
        let a = api_error(&E::NoQuorum {
            reachable: vec!["a".into()],
            voters: vec!["a".into(), "b".into()],
        });
        assert!(a.message.contains("no quorum"), "{}", a.message);
    }

    #[tokio::test]
    async fn answers_503_starting_while_the_domain_starts() {
        let (api, _dir) = start(Some(Slot::starting())).await;
        for (m, path, body) in [
            (Method::GET, "/api/v1/cluster", None),
            (
                Method::POST,
                "/api/v1/cluster",
                Some(json!({"name": "prod", "address": "10.0.0.1"})),
            ),
            (Method::DELETE, "/api/v1/cluster/nodes/b", None),
        ] {
            let r = api.call(m, path, body).await;
            assert_eq!(
                (r.status.as_u16(), r.json()["code"].clone()),
                (503, json!("starting")),
                "{path}"
            );
            assert_eq!(r.header_all("retry-after"), vec!["2"]);
        }
        let v = api.call(Method::GET, "/api/v1/health", None).await.json();
        assert_eq!(v["domains"]["cluster"]["state"], "starting");
        assert_eq!(v["ready"], false);
    }

    #[tokio::test]
    async fn routes_need_a_login() {
        let (api, _dir) = start(None).await;
        let anon = cairn_client::send(
            api.addr,
            cairn_client::ClientRequest::new(Method::GET, "/api/v1/cluster"),
            api.pin,
            crate::test_server::T,
        )
        .await
        .unwrap();
        assert_eq!(anon.status, 401);
    }
}
