//! `--watch`: notices that the config file's content changed. Polling the
//! content (not inotify) also sees editors that replace the file by a rename
//! and files on network mounts; a config file is small.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

pub struct Watched {
    path: PathBuf,
    last: Option<u64>,
}

impl Watched {
    pub fn new(path: PathBuf) -> Self {
        let last = digest(&path);
        Self { path, last }
    }

    /// True once per change of content; a file that cannot be read (half
    /// written, being replaced) is not a change.
    pub fn changed(&mut self) -> bool {
        let Some(now) = digest(&self.path) else {
            return false;
        };
        let changed = self.last != Some(now);
        self.last = Some(now);
        changed
    }
}

fn digest(path: &PathBuf) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}
