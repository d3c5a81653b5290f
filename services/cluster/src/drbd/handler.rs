//! The fence-peer handler as drbdadm runs it (`cairnd drbd-fence-peer`, decision 0027): the
//! resource from drbdadm's environment, this node's role from `/proc/drbd`, the answer from
//! etcd through [`super::fence::handle`], bounded in time; any failure keeps I/O frozen.

use super::fence::{self, Answer, Role};
use super::names::Index;
use super::proc_status;
use crate::etcd_wait;
use crate::local::LocalFiles;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The subcommand's name.
pub const SUBCOMMAND: &str = "drbd-fence-peer";
/// Connecting to etcd (each endpoint probed within this).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole handler: past this the answer is "keep frozen" (I/O stays frozen until cairnd
/// or the admin resumes it; DRBD itself waits for the handler without a limit).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// This node's role for `minor` per `/proc/drbd`; Primary when it cannot be read (the
/// answer for a primary is never less safe: it may stay frozen, never outdate the peer
/// wrongly).
pub fn role_from_proc(text: Option<&str>, minor: u32) -> Role {
    let dev = text
        .and_then(|t| proc_status::parse(t).ok())
        .and_then(|p| p.device(minor).cloned());
    match dev {
        Some(d) if d.role == "Secondary" => Role::Secondary,
        _ => Role::Primary,
    }
}

/// The resource and minor from drbdadm's environment (`DRBD_RESOURCE`, `DRBD_MINOR`; the
/// minor follows from our names when the variable is missing).
pub fn resource_from_env(get: impl Fn(&str) -> Option<String>) -> Result<(String, u32), String> {
    let name = get("DRBD_RESOURCE").ok_or("DRBD_RESOURCE is not set (run by drbdadm?)")?;
    let index = Index::from_name(&name)
        .ok_or_else(|| format!("DRBD_RESOURCE={name:?} is not one of Cairn's resources"))?;
    let minor = match get("DRBD_MINOR") {
        Some(m) => m
            .parse()
            .map_err(|_| format!("DRBD_MINOR={m:?} is not a number"))?,
        None => index.minor(),
    };
    Ok((name, minor))
}

/// Run the handler: the answer (its exit code is the process's).
pub fn run(cluster_dir: &Path, proc_drbd: &Path) -> Answer {
    let (resource, minor) = match resource_from_env(|k| std::env::var(k).ok()) {
        Ok(v) => v,
        Err(e) => return Answer::KeepFrozen(e),
    };
    let role = role_from_proc(std::fs::read_to_string(proc_drbd).ok().as_deref(), minor);
    let files = LocalFiles {
        dir: cluster_dir.to_path_buf(),
    };
    let state = match files.load() {
        Ok(Some(s)) => s,
        Ok(None) => return Answer::KeepFrozen("this node is in no cluster".into()),
        Err(e) => return Answer::KeepFrozen(format!("cluster state: {e}")),
    };
    let tls = match etcd_wait::client_tls(&files) {
        Ok(t) => t,
        Err(e) => return Answer::KeepFrozen(format!("cluster certificates: {e}")),
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Answer::KeepFrozen(format!("runtime: {e}")),
    };
    let me = state.node_name.clone();
    rt.block_on(async move {
        let work = async {
            let client = crate::etcd::connect(&state.etcd_endpoints, &tls, CONNECT_TIMEOUT)
                .await
                .map_err(|e| cairn_base::error_chain::error_chain(&e))?;
            Ok::<_, String>(fence::handle(&client, &me, &resource, role, now).await)
        };
        match tokio::time::timeout(DEADLINE, work).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => Answer::KeepFrozen(format!("{resource}: etcd unreachable: {e}")),
            Err(_) => Answer::KeepFrozen(format!(
                "{resource}: no answer from etcd within {DEADLINE:?}"
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC: &str = "version: 8.4.11 (api:1/proto:86-101)\n\
        3: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n\
        \x20   ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n\
        4: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C s-----\n\
        \x20   ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n";

    #[test]
    fn role_is_read_and_unknown_counts_as_primary() {
        assert_eq!(role_from_proc(Some(PROC), 3), Role::Secondary);
        assert_eq!(role_from_proc(Some(PROC), 4), Role::Primary);
        assert_eq!(role_from_proc(Some(PROC), 9), Role::Primary);
        assert_eq!(role_from_proc(Some("garbage"), 3), Role::Primary);
        assert_eq!(role_from_proc(None, 3), Role::Primary);
    }

    #[test]
    fn resource_and_minor_from_drbdadms_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            resource_from_env(env(&[("DRBD_RESOURCE", "cairn3"), ("DRBD_MINOR", "3")])),
            Ok(("cairn3".into(), 3))
        );
        assert_eq!(
            resource_from_env(env(&[("DRBD_RESOURCE", "cairn7")])),
            Ok(("cairn7".into(), 7))
        );
        assert!(resource_from_env(env(&[]))
            .unwrap_err()
            .contains("DRBD_RESOURCE"));
        assert!(resource_from_env(env(&[("DRBD_RESOURCE", "r0")]))
            .unwrap_err()
            .contains("not one of Cairn's"));
        assert!(
            resource_from_env(env(&[("DRBD_RESOURCE", "cairn3"), ("DRBD_MINOR", "x")]))
                .unwrap_err()
                .contains("DRBD_MINOR")
        );
    }

    #[test]
    fn outside_a_cluster_the_answer_keeps_io_frozen() {
        // No DRBD_RESOURCE in the test's environment, or no cluster state: never an exit
        // code that lets a lone primary write.
        let dir = tempfile::tempdir().unwrap();
        let a = run(dir.path(), &dir.path().join("proc"));
        assert_eq!(a.exit_code(), 1, "{a:?}");
    }
}
