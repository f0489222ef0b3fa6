#!/usr/bin/env bash
# Boots a stock Debian kernel in QEMU and runs ceus-edge's capture and display code
# against real drivers: the vivid virtual video driver (device listing, YUYV, NV12, GREY
# and RGB3 capture in each quantization range, and a phantom cine injected through vivid's
# output-to-capture loopback and followed by the live pipeline), and bochs-drm's
# /dev/fb0 (the overlay drawn by `ceus-edge run`, read back with QEMU's screendump).
#
# The kernel package is downloaded with `apt-get download` and unpacked with `dpkg -x`
# into target-vm/; it is never installed on the host. The guest's root is an initramfs
# built here: busybox-static, scripts/vm/init, the kernel modules in load order and the
# shared libraries of the test binaries. The repository is shared with the guest over
# 9p at the same path, so the test binary finds the ceus-edge binary and the fixtures
# where cargo put them. The guest has no network; the QEMU monitor is a Unix socket.
# The live test's phantom cine is written here on the host, where rendering it takes a
# fraction of the time it takes in the guest.
#
# Usage: scripts/vm-test.sh
# Environment: CEUS_VM_ACCEL=auto|kvm|tcg (default auto: KVM when it boots, else TCG),
# CEUS_VM_TIMEOUT=SECONDS for the whole guest run (default 900), CEUS_VM_FILTER for the
# guest's test filters (default "vivid:: fbdev::"), CEUS_VM_SKIP for a test to skip
# (default none).
# Exit status: 0 when every guest test passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$repo/target-vm

# Pinned: the load order below and vivid's defaults were checked on this kernel.
kernel_package=linux-image-6.1.0-50-amd64
kernel_version=6.1.176-1
kernel_release=6.1.0-50-amd64
modules=(vivid bochs virtio_pci 9pnet_virtio 9p)

accel=${CEUS_VM_ACCEL:-auto}
filters=${CEUS_VM_FILTER:-vivid:: fbdev::}
skip=${CEUS_VM_SKIP-}
timeout_s=${CEUS_VM_TIMEOUT:-900}
# KVM on these machines is a paravirtual variant that hangs a stock kernel before init.
kvm_boot_s=20

log() { echo "vm-test: $*" >&2; }

install_missing() {
    local missing=()
    for package in busybox-static kmod cpio libclang-dev; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    # qemu-system-x86 must match the qemu-utils of the machine image, which come from
    # bookworm-backports.
    if ! dpkg -s qemu-system-x86 >/dev/null 2>&1; then
        local sources=/etc/apt/sources.list.d/bookworm-backports.sources
        if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
            # The same mirror and key as the machine's own Debian sources.
            local uris keyring
            uris=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
            keyring=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
            if [ -z "$uris" ]; then
                echo "vm-test: no URIs line in /etc/apt/sources.list.d/debian.sources;" \
                    "add bookworm-backports to the apt sources, then rerun" >&2
                exit 1
            fi
            log "adding bookworm-backports to $sources"
            printf '%s\n' "Types: deb" "URIs: $uris" \
                "Suites: bookworm-backports" "Components: main" \
                "Signed-By: ${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}" >"$sources"
        fi
        log "installing qemu-system-x86 from bookworm-backports"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
            qemu-system-x86
    fi
}

fetch_kernel() {
    local root=$work/kernel
    if [ -f "$root/boot/vmlinuz-$kernel_release" ] && [ -f "$root/lib/modules/$kernel_release/modules.dep" ]; then
        return
    fi
    mkdir -p "$work/cache"
    local deb
    deb=$work/cache/${kernel_package}_${kernel_version}_amd64.deb
    if [ ! -f "$deb" ]; then
        log "downloading $kernel_package $kernel_version"
        (cd "$work/cache" && apt-get download -q "$kernel_package=$kernel_version")
    fi
    rm -rf "$root"
    dpkg -x "$deb" "$root"
    depmod -b "$root" "$kernel_release"
}

# Builds the test binaries and prints the path of the integration-test executable.
build_tests() {
    cargo test --no-run --test integration --message-format=json 2>"$work/build.log" \
        | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "integration" and message.get("executable"):
        print(message["executable"])
'
}

# Copies a binary's shared libraries (from ldd) into the staging tree.
copy_libraries() {
    local staging=$1 binary=$2 library
    for library in $(ldd "$binary" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }'); do
        cp -L --parents "$library" "$staging"
    done
}

build_initramfs() {
    local test_binary=$1 staging=$work/initramfs
    rm -rf "$staging"
    mkdir -p "$staging"/{bin,etc/ceus-vm,lib/modules,proc,sys,dev,tmp}
    cp /bin/busybox "$staging/bin/busybox"
    cp scripts/vm/init "$staging/init"

    local module_root=$work/kernel/lib/modules/$kernel_release
    : >"$staging/etc/ceus-vm/modules"
    local module path
    for module in "${modules[@]}"; do
        modprobe -d "$work/kernel" -S "$kernel_release" --show-depends "$module" \
            | awk '$1 == "insmod" { print $2 }'
    done | awk '!seen[$0]++' | while read -r path; do
        local relative=${path#"$module_root"/}
        mkdir -p "$staging/lib/modules/$(dirname "$relative")"
        cp "$path" "$staging/lib/modules/$relative"
        echo "$relative" >>"$staging/etc/ceus-vm/modules"
    done

    copy_libraries "$staging" "$test_binary"
    copy_libraries "$staging" "$repo/target/debug/ceus-edge"

    cat >"$staging/etc/ceus-vm/config" <<EOF
CEUS_VM_REPO='$repo'
EOF
    cat >"$staging/etc/ceus-vm/run.sh" <<EOF
status=0
for filter in $filters; do
    started=\$(date +%s)
    '$test_binary' --ignored --test-threads 1 --nocapture "\$filter" ${skip:+--skip '$skip'} 2>&1 || status=1
    echo "ceus-vm: \$filter took \$((\$(date +%s) - started)) s"
done
echo "ceus-vm: tests exit \$status"
EOF
    (cd "$staging" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.cpio.gz"
}

# Sends one command to the QEMU monitor on its Unix socket and prints the reply.
monitor_command() {
    python3 - "$work/monitor.sock" "$1" <<'PYTHON'
import socket, sys, time
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(sys.argv[1])
client.settimeout(10)

def read_until_prompt():
    data = b""
    while not data.endswith(b"(qemu) "):
        chunk = client.recv(4096)
        if not chunk:
            break
        data += chunk
    return data

read_until_prompt()
client.sendall(sys.argv[2].encode() + b"\n")
sys.stdout.write(read_until_prompt().decode(errors="replace"))
PYTHON
}

# Serves the guest's screendump requests: a console line "ceus-vm: screendump NAME"
# makes the host save the screen as target-vm/NAME.ppm, then create
# target-vm/NAME.done, which the guest waits for.
serve_screendumps() {
    local serial=$1 name
    for name in $(grep -a '^ceus-vm: screendump ' "$serial" | awk '{ print $3 }' | tr -d '\r'); do
        if [ ! -e "$work/$name.done" ]; then
            monitor_command "screendump $work/$name.ppm" >/dev/null
            touch "$work/$name.done"
            log "saved the guest's screen as $work/$name.ppm"
        fi
    done
}

# Boots the guest with accelerator $1; returns 0 when it powered off by itself, 2 when a
# KVM boot did not reach init within $kvm_boot_s seconds, 1 on a timeout.
boot() {
    local accelerator=$1 serial=$work/serial.log monitor=$work/monitor.sock
    # TCG's "max" model emulates AVX2 and FMA, which tract's kernels use: DenseNet-201
    # ran in 51 s instead of 79 s on two threads (one run each on a loaded machine).
    local cpu_options=()
    [ "$accelerator" = tcg ] && cpu_options=(-cpu max)
    rm -f "$serial" "$monitor" "$work"/*.ppm "$work"/*.done
    qemu-system-x86_64 \
        -accel "$accelerator" "${cpu_options[@]}" -m 2048 -smp 2 \
        -kernel "$work/kernel/boot/vmlinuz-$kernel_release" \
        -initrd "$work/initramfs.cpio.gz" \
        -append "console=ttyS0 panic=-1 loglevel=4" \
        -vga std -display none -nic none -no-reboot \
        -serial "file:$serial" \
        -monitor "unix:$monitor,server=on,wait=off" \
        -virtfs "local,path=$repo,mount_tag=repo,security_model=none" &
    local qemu=$! started=$SECONDS
    while kill -0 "$qemu" 2>/dev/null; do
        local elapsed=$((SECONDS - started))
        if [ "$accelerator" = kvm ] && [ "$elapsed" -ge "$kvm_boot_s" ] \
            && ! grep -qs '^ceus-vm: init' "$serial"; then
            log "KVM did not reach init within ${kvm_boot_s} s; falling back to TCG"
            kill "$qemu"
            wait "$qemu" || true
            return 2
        fi
        if [ "$elapsed" -ge "$timeout_s" ]; then
            log "the guest did not finish within $timeout_s s"
            kill "$qemu"
            wait "$qemu" || true
            return 1
        fi
        serve_screendumps "$serial"
        sleep 1
    done
    wait "$qemu"
}

install_missing
fetch_kernel
mkdir -p "$work"
log "building the tests"
test_binary=$(build_tests)
if [ -z "$test_binary" ] || [ ! -x "$repo/target/debug/ceus-edge" ]; then
    log "the build did not produce the integration-test binary:"
    tail -n 30 "$work/build.log" >&2
    exit 1
fi
# The cine of vivid::live (tests/integration/vivid/live.rs), which checks these settings
# and writes the cine itself when they differ.
"$repo/target/debug/ceus-edge" phantom --format y4m --size 640x480 --fps 10 --frames 200 \
    --seed 23 --out "$work/phantom-live" >/dev/null
build_initramfs "$test_binary"

start=$SECONDS
status=0
case $accel in
    auto)
        if [ -w /dev/kvm ]; then
            boot kvm || status=$?
            if [ "$status" -eq 2 ]; then
                status=0
                boot tcg || status=$?
            fi
        else
            boot tcg || status=$?
        fi
        ;;
    kvm | tcg) boot "$accel" || status=$? ;;
    *)
        log "CEUS_VM_ACCEL must be auto, kvm or tcg, not $accel"
        exit 2
        ;;
esac
log "guest ran for $((SECONDS - start)) s"

serial=$work/serial.log
grep -E '^(ceus-vm:|test |test result:|running )' "$serial" || true
if [ "$status" -ne 0 ]; then
    log "the guest run failed; the whole console is in $serial"
    exit 1
fi
if ! grep -q '^ceus-vm: tests exit 0' "$serial"; then
    log "guest tests failed; the whole console is in $serial"
    exit 1
fi
echo "vm test summary:"
grep -E '^test result:' "$serial"
