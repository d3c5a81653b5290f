//! Allocating, reading, updating and deleting resource records in etcd, each write one
//! transaction, so two nodes never hold the same index (minor, port).

use super::names::{lowest_free, Index, MAX_RESOURCES};
use super::record::{index_key, resource_key, ResourceRecord, INDEX_PREFIX, RESOURCES_PREFIX};
use crate::error::ClusterError;
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

/// How many times an allocation that lost a race tries the next free index.
pub const ALLOCATE_ATTEMPTS: usize = 16;

fn etcd_err(what: &'static str) -> impl FnOnce(etcd_client::Error) -> ClusterError {
    move |source| ClusterError::Etcd {
        what: what.to_string(),
        source: Box::new(source),
    }
}

fn record_err(key: &[u8]) -> impl FnOnce(serde_json::Error) -> ClusterError + '_ {
    move |source| ClusterError::Record {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    }
}

/// The indices held now.
pub async fn taken(client: &Client) -> Result<Vec<Index>, ClusterError> {
    let resp = client
        .kv_client()
        .get(
            INDEX_PREFIX,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .map_err(etcd_err("read the DRBD index keys"))?;
    Ok(resp
        .kvs()
        .iter()
        .filter_map(|kv| {
            let k = std::str::from_utf8(kv.key()).ok()?;
            Index::new(k.strip_prefix(INDEX_PREFIX)?.parse().ok()?)
        })
        .collect())
}

/// Allocate the lowest free index and write the record `make` builds for it (its `name` and
/// `index` are set from the index), in one transaction that succeeds only if neither the
/// index key nor the record exists. A lost race reads again and tries the next free index.
pub async fn allocate(
    client: &Client,
    make: impl Fn(Index) -> ResourceRecord,
) -> Result<ResourceRecord, ClusterError> {
    for _ in 0..ALLOCATE_ATTEMPTS {
        let held = taken(client).await?;
        let Some(i) = lowest_free(&held) else {
            return Err(ClusterError::Conflict(format!(
                "all {MAX_RESOURCES} replicated disk numbers of the cluster are taken"
            )));
        };
        let mut rec = make(i);
        rec.name = i.name();
        rec.index = i.get();
        let (ik, rk) = (index_key(i), resource_key(&rec.name));
        let json = serde_json::to_vec(&rec).unwrap_or_default();
        let txn = Txn::new()
            .when([
                Compare::version(ik.as_str(), CompareOp::Equal, 0),
                Compare::version(rk.as_str(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(ik.as_str(), rec.name.as_str(), None),
                TxnOp::put(rk.as_str(), json, None),
            ]);
        let resp = client
            .kv_client()
            .txn(txn)
            .await
            .map_err(etcd_err("allocate a DRBD resource number"))?;
        if resp.succeeded() {
            return Ok(rec);
        }
    }
    Err(ClusterError::Conflict(format!(
        "could not allocate a replicated disk number in {ALLOCATE_ATTEMPTS} attempts: \
         other nodes kept taking the free ones; retry"
    )))
}

/// The record `name` and its mod revision (for a guarded update).
pub async fn get(
    client: &Client,
    name: &str,
) -> Result<Option<(ResourceRecord, i64)>, ClusterError> {
    let key = resource_key(name);
    let resp = client
        .kv_client()
        .get(key.as_str(), None)
        .await
        .map_err(etcd_err("read a DRBD resource record"))?;
    match resp.kvs().first() {
        None => Ok(None),
        Some(kv) => {
            let rec = serde_json::from_slice(kv.value()).map_err(record_err(kv.key()))?;
            Ok(Some((rec, kv.mod_revision())))
        }
    }
}

/// Every resource record.
pub async fn list(client: &Client) -> Result<Vec<ResourceRecord>, ClusterError> {
    let resp = client
        .kv_client()
        .get(RESOURCES_PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(etcd_err("list the DRBD resource records"))?;
    resp.kvs()
        .iter()
        .map(|kv| serde_json::from_slice(kv.value()).map_err(record_err(kv.key())))
        .collect()
}

/// Write `rec` only if its record is still at `mod_revision` (false: someone changed it
/// first; read again and decide again).
pub async fn update_guarded(
    client: &Client,
    rec: &ResourceRecord,
    mod_revision: i64,
) -> Result<bool, ClusterError> {
    let key = resource_key(&rec.name);
    let json = serde_json::to_vec(rec).unwrap_or_default();
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.as_str(),
            CompareOp::Equal,
            mod_revision,
        )])
        .and_then([TxnOp::put(key.as_str(), json, None)]);
    let resp = client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd_err("update a DRBD resource record"))?;
    Ok(resp.succeeded())
}

/// Delete the record and free its index, in one transaction.
pub async fn delete(client: &Client, name: &str) -> Result<(), ClusterError> {
    let Some(i) = Index::from_name(name) else {
        return Err(ClusterError::Invalid {
            field: "name",
            reason: format!("{name:?} is not a replicated disk's resource name (cairn<n>)"),
        });
    };
    let txn = Txn::new().and_then([
        TxnOp::delete(resource_key(name), None),
        TxnOp::delete(index_key(i), None),
    ]);
    client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd_err("delete a DRBD resource record"))?;
    Ok(())
}
