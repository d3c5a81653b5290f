//! File services (issue 22): users and groups for file access, Samba's configuration and
//! password database, the NFS exports, and the `@GMT-` names Samba's `shadow_copy2` reads
//! for the shares' snapshots (decision 0028, docs/files.md).

pub mod accounts;
pub mod connections;
pub mod error;
pub mod names;
pub mod nfs;
pub mod passdb;
pub mod service;
pub mod shadow;
pub mod smb;
pub mod store;
pub mod supervise;
pub mod unix;
pub mod users;

pub use accounts::{Accounts, Group, User};
pub use error::FilesError;
pub use store::{AccountStore, LocalAccountStore};
