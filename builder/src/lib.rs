//! Pinned manifest to signed bundle.
pub mod rpm;
/// Builder errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Placeholder.
    #[error("not built")]
    NotBuilt,
}
impl Error {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        None
    }
}
