//! A temporary folder per server instance, removed on drop.

use std::path::{Path, PathBuf};

/// A fresh folder under the system temp dir, removed with everything in it
/// when dropped.
#[derive(Debug)]
pub struct TempDir {
    /// The folder; unique per instance so parallel tests never share files.
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/xmpp-lambda-<label>-<uuid>`.
    pub fn new(label: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "xmpp-lambda-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Set XMPP_LAMBDA_KEEP_TEMP=1 to inspect configs and logs after a run.
        if std::env::var_os("XMPP_LAMBDA_KEEP_TEMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
