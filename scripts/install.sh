#!/usr/bin/env bash
# Installs ceus-edge on a board: the binary, the extractor named in the board profile
# with its manifest, the demo signature, the profile, the systemd unit and the udev rule
# of board/NAME/. Run it as root on the board, from a checkout that contains the binary.
#
# Usage: scripts/install.sh --board NAME [--binary FILE] [--layout FILE]
#                           [--signature FILE] [--root DIR] [--no-start]
#   --board NAME      a folder of board/: raspberry-pi-5, rk3588 or imx8mp
#   --binary FILE     the aarch64 ceus-edge binary (default: target/release/ceus-edge)
#   --layout FILE     a layout profile of the scanner; installed as
#                     /etc/ceus-edge/layout.toml and named in the board profile
#   --signature FILE  a signature from `ceus-edge train`, installed as
#                     /etc/ceus-edge/signature.bin and named in the board profile
#   --root DIR        install into DIR instead of / (to stage an image); creates no
#                     user and starts nothing
#   --no-start        install and enable, but do not start the service now
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
board=""
binary=target/release/ceus-edge
layout=""
signature=""
root=""
start=yes

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
        --board) board=${2:?}; shift 2 ;;
        --binary) binary=${2:?}; shift 2 ;;
        --layout) layout=${2:?}; shift 2 ;;
        --signature) signature=${2:?}; shift 2 ;;
        --root) root=${2:?}; shift 2 ;;
        --no-start) start=no; shift ;;
        -h | --help) usage ;;
        *) echo "install.sh: unknown argument $1" >&2; usage ;;
    esac
done

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

[ -n "$board" ] || fail "missing --board NAME (one of: $(cd board && ls -d */ | tr -d / | tr '\n' ' '))"
profile_dir=board/$board
[ -f "$profile_dir/board.toml" ] || fail "board/$board/board.toml not found"
[ -x "$binary" ] || fail "$binary not found or not executable: build it first (see board/$board/README.md)"
for file in "$layout" "$signature"; do
    [ -z "$file" ] || [ -f "$file" ] || fail "$file not found"
done

# The extractor file named by the profile's `model` key, or the bundled default.
model=$(sed -n 's/^model *= *"\([^"]*\)".*/\1/p' "$profile_dir/board.toml")
model=${model:-densenet201-int8.onnx}
manifest=models/${model%.onnx}.toml
[ -f "models/$model" ] || fail "models/$model (the profile's model) not found"
[ -f "$manifest" ] || fail "$manifest, the manifest of models/$model, not found"

if [ -z "$root" ]; then
    [ "$(id -u)" -eq 0 ] || fail "run as root, or give --root DIR to stage the files"
    # A binary for another architecture fails here rather than in the service.
    "$binary" --version >/dev/null || fail "$binary does not run on this machine"
fi

share=$root$prefix/share/ceus-edge
etc=$root/etc/ceus-edge
install -d "$root$prefix/bin" "$share/models" "$etc" \
    "$root/etc/systemd/system" "$root/etc/udev/rules.d"
install -m 0755 "$binary" "$root$prefix/bin/ceus-edge"
install -m 0644 "models/$model" "$manifest" models/demo-signature.bin "$share/models/"
install -m 0644 "$profile_dir/README.md" "$share/README.md"

# Keep an edited profile: the new one goes beside it as board.toml.new.
profile_target=$etc/board.toml
if [ -f "$profile_target" ] && ! cmp -s "$profile_dir/board.toml" "$profile_target"; then
    profile_target=$etc/board.toml.new
    echo "install.sh: $etc/board.toml differs from board/$board/board.toml; kept it, new one in $profile_target" >&2
fi
install -m 0644 "$profile_dir/board.toml" "$profile_target"
if [ -n "$layout" ]; then
    install -m 0644 "$layout" "$etc/layout.toml"
    grep -q '^layout_profile *=' "$profile_target" \
        || echo 'layout_profile = "layout.toml"' >>"$profile_target"
fi
if [ -n "$signature" ]; then
    install -m 0644 "$signature" "$etc/signature.bin"
    grep -q '^signature *=' "$profile_target" \
        || echo 'signature = "/etc/ceus-edge/signature.bin"' >>"$profile_target"
fi

install -m 0644 "$profile_dir/ceus-edge.service" "$root/etc/systemd/system/ceus-edge.service"
install -m 0644 "$profile_dir/99-ceus-edge-capture.rules" \
    "$root/etc/udev/rules.d/99-ceus-edge-capture.rules"

if [ -n "$root" ]; then
    echo "staged board/$board in $root; on the board, create the ceus-edge user and enable ceus-edge.service"
    exit 0
fi

if ! id ceus-edge >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --groups video ceus-edge
fi
udevadm control --reload
udevadm trigger --subsystem-match=video4linux
systemctl daemon-reload
if [ "$start" = yes ]; then
    systemctl enable --now ceus-edge.service
    systemctl --no-pager status ceus-edge.service || true
else
    systemctl enable ceus-edge.service
fi
echo "installed ceus-edge for board/$board; logs: journalctl -u ceus-edge"
