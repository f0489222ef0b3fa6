#!/usr/bin/env bash
# Builds ceus-edge for aarch64-unknown-linux-gnu with Debian's Rust packages and runs the
# whole test suite under qemu-user, then the agreement tests (aarch64 results against the
# x86_64 fixtures) again on QEMU's Cortex-A53 and Cortex-A76 models. QEMU's default CPU
# has the dot-product and SVE instructions; the A53 has neither, so tract runs its int8
# layers on other kernels there.
#
# The rustup toolchain on the development machines is x86_64 only, so this uses Debian's
# rustc-web/cargo-web (1.96) with libstd-rust-web-dev:arm64. qemu-aarch64 runs without -L,
# so the multiarch libc that libstd-rust-web-dev:arm64 pulls in is used: with the cross libc
# under /usr/aarch64-linux-gnu, thread creation hangs under qemu.
#
# Usage: scripts/cross-test-aarch64.sh [--fast] [extra cargo test arguments]
#   --fast  run only the agreement tests, on each CPU model (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user libclang-dev)

install_missing() {
    local missing=()
    for package in "${packages[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return
    fi
    echo "installing ${missing[*]}"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

install_missing
scripts/fetch-test-data.sh

# Debian's toolchain, not rustup's proxies earlier on PATH.
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR="$PWD/target-aarch64"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# Integration tests start the binary through this runner (tests/integration/common.rs).
export CEUS_EDGE_RUNNER=qemu-aarch64

fast=no
if [ "${1:-}" = --fast ]; then
    fast=yes
    shift
fi

mkdir -p "$CARGO_TARGET_DIR"
summary=$CARGO_TARGET_DIR/cross-test-summary.txt
: >"$summary"

# Runs cargo test under qemu-aarch64 with CPU model $1 (empty: QEMU's default) and
# appends the timing and result lines to the summary.
run_tests() {
    local cpu=$1 log started status=0
    shift
    log=$CARGO_TARGET_DIR/cross-test-${cpu:-default}.log
    started=$SECONDS
    env ${cpu:+QEMU_CPU=$cpu} /usr/bin/cargo test --target "$target" "$@" 2>&1 | tee "$log" || status=$?
    {
        echo "cpu ${cpu:-default} ($*): $((SECONDS - started)) s, exit $status"
        grep -E '^test result:' "$log" || echo "no test result"
    } >>"$summary"
    return "$status"
}

status=0
if [ "$fast" = yes ]; then
    run_tests "" --test integration agreement:: "$@" || status=1
else
    run_tests "" "$@" || status=1
fi
for cpu in cortex-a53 cortex-a76; do
    run_tests "$cpu" --test integration agreement:: || status=1
done

echo "aarch64 test summary:"
cat "$summary"
exit "$status"
