//! Image name mapping from source references to a target registry (being built).
