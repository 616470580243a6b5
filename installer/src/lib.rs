//! The isolated side: inventory and bundle to a per-host install plan, then executors
//! that carry the plan out. (Planning is being built; see the HA plan issue.)

/// Installer errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not yet built.
    #[error("{0} is not built yet")]
    NotBuilt(&'static str),
}

impl Error {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        None
    }
}
