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
