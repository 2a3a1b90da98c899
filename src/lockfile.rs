//! Lock files that their holder removes as it lets go (state records, unpack locks), so none
//! accumulates. The price is one check after each lock: a process that opened the file before
//! its holder removed it gets its lock on a file no longer in the folder, which guards nothing
//! (the next comer makes and locks a new one), and must start over.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The locked file's metadata when `path` still names it; `None` when it was removed or
/// replaced since it was opened.
pub fn still_named(held: &File, path: &Path) -> Option<Metadata> {
    match (held.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) if (held.dev(), held.ino()) == (named.dev(), named.ino()) => {
            Some(held)
        }
        _ => None,
    }
}
