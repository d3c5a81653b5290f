//! The command line of `cairnctl cluster`.

use clap::{Args, Subcommand};
use std::net::IpAddr;

/// `cairnctl cluster [status|create|token|join|leave|remove|recover]`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ClusterArgs {
    /// Without one: the cluster's status.
    #[command(subcommand)]
    pub command: Option<ClusterCommand>,
}

/// A cluster verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ClusterCommand {
    /// The cluster as this node sees it: quorum, failover, the nodes and their liveness.
    Status,
    /// Make this node the first member of a new cluster (pools, VMs and users are kept).
    Create {
        /// The cluster's name: lowercase letters, digits and '-', starting with a letter.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// This node's address on the cluster network (one of its own addresses).
        #[arg(long, value_name = "IP")]
        address: IpAddr,
    },
    /// Make a join token for a new node (shown once; it can be spent once).
    Token {
        /// How long the token lasts: seconds, or a number with s, m or h (1m to 24h;
        /// default 1h).
        #[arg(long, value_name = "DURATION", value_parser = ttl_s)]
        ttl: Option<u64>,
    },
    /// Join the cluster a token names (run on the new node).
    Join {
        /// The join token, made on a member with `cairnctl cluster token`; `-` reads it from
        /// the first line of stdin (kept out of the shell history).
        token: String,
        /// This node's address on the cluster network (one of its own addresses).
        #[arg(long, value_name = "IP")]
        address: IpAddr,
        /// Join as a witness: an etcd vote and a minimal cairnd only (the third vote of two
        /// nodes).
        #[arg(long)]
        witness: bool,
    },
    /// Leave the cluster gracefully; the node becomes standalone.
    Leave,
    /// Remove a dead node from the cluster (its etcd member and certificate).
    Remove {
        /// The node's name.
        node: String,
    },
    /// Quorum lost for good (most voters destroyed): on the survivor, make a new cluster of
    /// one from an etcd snapshot (a new cluster id; the CA kept; the lost nodes dropped).
    /// Refused while this node has quorum.
    Recover {
        /// The snapshot file to restore (as `cairnctl cluster status` lists them); default:
        /// the newest.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<String>,
    },
}

/// A token lifetime: `90`, `90s`, `30m`, `1h` (seconds; the node checks the range).
pub fn ttl_s(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 's'),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 90s, 30m or 1h)"))?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        other => return Err(format!("unknown unit {other:?}: use s, m or h")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}
