//! How a push tells the CLI what it is doing.

use super::PlannedImage;

/// Progress of a push; the CLI draws bars from it. Called from several threads.
pub trait PushReporter: Sync + Send {
    /// Connected; `harbor` says whether projects are managed.
    fn connected(&self, _registry: &str, _harbor: bool) {}
    /// A Harbor project was checked or created.
    fn project(&self, _name: &str, _created: bool) {}
    /// Presence checked: bytes to upload, bytes already present.
    fn transfer_started(&self, _to_upload: u64, _present: u64, _bundle_bytes: u64) {}
    /// Bytes of the bundle verified so far.
    fn verified(&self, _bytes: u64) {}
    /// Bytes sent.
    fn uploaded(&self, _bytes: u64) {}
    /// Verification and uploads are done.
    fn transfer_finished(&self) {}
    /// An image's manifests and tag are in place.
    fn image_pushed(&self, _image: &PlannedImage) {}
    /// A transient failure is being retried.
    fn retrying(&self, _what: &str, _error: &str) {}
}

/// A reporter that shows nothing.
pub struct NoReport;
impl PushReporter for NoReport {}
