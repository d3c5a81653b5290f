//! The command line of `cairnctl images`.

use clap::{Args, Subcommand};

/// `cairnctl images [VERB]`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub command: ImagesCommand,
}

/// An image library verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ImagesCommand {
    /// The images of a pool's library, and the uploads in progress.
    List {
        /// The pool (its share `images` holds the library).
        #[arg(long)]
        pool: String,
    },
    /// Upload a file (ISO or disk image) with progress; an upload of the same name and size
    /// left unfinished is resumed from where it stopped.
    Upload {
        /// The file to upload.
        file: std::path::PathBuf,
        /// The pool.
        #[arg(long)]
        pool: String,
        /// The image's name in the library (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete an image (refused while a VM uses it).
    Delete {
        /// The image's name.
        name: String,
        /// The pool.
        #[arg(long)]
        pool: String,
    },
}
