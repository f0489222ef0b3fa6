//! Layout profiles.

/// A layout read from TOML.
#[derive(Debug)]
pub struct LayoutProfile {}
