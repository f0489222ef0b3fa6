//! The board profiles shipped under board/, read by the parser of `run --board`.

use ceus_edge::board::BoardProfile;

use crate::common::repo_root;

#[test]
fn shipped_board_profiles_load() {
    let boards = ["raspberry-pi-5", "rk3588", "imx8mp"];
    for board in boards {
        let path = repo_root().join("board").join(board).join("board.toml");
        let profile =
            BoardProfile::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(profile.name.is_some(), "{board}: no name");
        assert!(
            profile.source.starts_with("v4l2:/dev/ceus-capture:"),
            "{board}: source {} is not the udev rule's name",
            profile.source
        );
        assert_eq!(profile.display.as_deref(), Some("fb:/dev/fb0"), "{board}");
        let model = profile.model.as_ref().expect("a model");
        assert!(
            repo_root().join("models").join(model).exists(),
            "{board}: model {} is not in models/",
            model.display()
        );
    }
}

/// `install.sh --root` stages a board's files as an image build would, and the staged
/// profile names a model that was staged with its manifest.
#[test]
fn install_script_stages_each_board() {
    for board in ["raspberry-pi-5", "rk3588", "imx8mp"] {
        let stage = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/install.sh"))
            .args([
                "--board",
                board,
                "--binary",
                env!("CARGO_BIN_EXE_ceus-edge"),
            ])
            .arg("--root")
            .arg(stage.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{board}: {stderr}");

        let root = stage.path();
        for file in [
            "usr/local/bin/ceus-edge",
            "etc/ceus-edge/board.toml",
            "etc/systemd/system/ceus-edge.service",
            "etc/udev/rules.d/99-ceus-edge-capture.rules",
            "usr/local/share/ceus-edge/models/demo-signature.bin",
        ] {
            assert!(root.join(file).is_file(), "{board}: {file} not staged");
        }
        let profile = BoardProfile::load(&root.join("etc/ceus-edge/board.toml")).unwrap();
        let models = root.join("usr/local/share/ceus-edge/models");
        let model = models.join(profile.model.expect("a model"));
        assert!(model.is_file(), "{board}: {} not staged", model.display());
        assert!(
            model.with_extension("toml").is_file(),
            "{board}: no manifest"
        );
    }
}
