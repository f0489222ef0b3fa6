//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::process::Command;

/// Builds a `Command` for the `ceus-edge` binary under test.
///
/// When `CEUS_EDGE_RUNNER` is set (the aarch64 cross test sets it to `qemu-aarch64`), the
/// binary runs through that program, because a foreign-architecture binary cannot be
/// executed directly where binfmt_misc is not available.
pub fn ceus_edge() -> Command {
    let binary = env!("CARGO_BIN_EXE_ceus-edge");
    match std::env::var_os("CEUS_EDGE_RUNNER").filter(|runner| !runner.is_empty()) {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

/// Returns the repository root, where `testdata/`, `models/` and `tests/fixtures/` live.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
