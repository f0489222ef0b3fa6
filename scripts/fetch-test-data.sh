#!/usr/bin/env bash
# Fetch real ultrasound DICOM files for the integration tests into testdata/dicom/.
#
# The files ship inside two PyPI wheels: pydicom (pydicom/data/test_files/) and pydicom-data
# (data_store/data/). Each wheel is downloaded with `pip download --no-deps`, checked against
# the sha256 pinned below, and only the listed files are unpacked. A second run with the
# files present and verified downloads nothing.
#
# Exit status: 0 when every file is in place, 3 when PyPI cannot be reached (tests treat
# that as a reason to skip), 1 on any other failure (a checksum mismatch, a missing file).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${repo_root}/testdata/dicom"
cache="${repo_root}/testdata/wheels"

pydicom_wheel_sha256="abf971a5440f84dbaf42c4b6758e30e62480902584f8b270b9a5d146e278a07b"
pydicom_data_wheel_sha256="622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637"

# Ultrasound and multi-frame files of pydicom 3.0.2 (pydicom/data/test_files/).
pydicom_files=(
    ExplVR_BigEnd.dcm
    SC_rgb_rle_16bit_2frame.dcm
    SC_rgb_rle_2frame.dcm
    examples_jpeg2k.dcm
    examples_palette.dcm
    examples_rgb_color.dcm
    examples_ybr_color.dcm
)

# Ultrasound and multi-frame files of pydicom-data 1.0.0 (data_store/data/).
pydicom_data_files=(
    JPGLosslessP14SV1_1s_1f_8b.dcm
    OBXXXX1A.dcm
    OBXXXX1A_2frame.dcm
    OBXXXX1A_expb_2frame.dcm
    OBXXXX1A_rle_2frame.dcm
    US1_J2KR.dcm
    US1_UNCR.dcm
    color-pl.dcm
    color-px.dcm
    color3d_jpeg_baseline.dcm
    emri_small.dcm
    emri_small_RLE.dcm
    emri_small_big_endian.dcm
    gdcm-US-ALOKA-16.dcm
    gdcm-US-ALOKA-16_big.dcm
)

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# Prints the path of a verified wheel in the cache, downloading it when missing or wrong.
fetch_wheel() {
    local spec="$1" pattern="$2" expected="$3"
    local wheel
    wheel="$(find "${cache}" -maxdepth 1 -name "${pattern}" -print -quit 2>/dev/null || true)"
    if [[ -n "${wheel}" && "$(sha256_of "${wheel}")" == "${expected}" ]]; then
        echo "${wheel}"
        return 0
    fi
    rm -f "${cache}"/${pattern}
    mkdir -p "${cache}"
    if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "${cache}" "${spec}" >&2; then
        echo "fetch-test-data: pip download ${spec} failed (is PyPI reachable?)" >&2
        exit 3
    fi
    wheel="$(find "${cache}" -maxdepth 1 -name "${pattern}" -print -quit)"
    if [[ -z "${wheel}" ]]; then
        echo "fetch-test-data: no wheel matching ${pattern} after downloading ${spec}" >&2
        exit 1
    fi
    local actual
    actual="$(sha256_of "${wheel}")"
    if [[ "${actual}" != "${expected}" ]]; then
        echo "fetch-test-data: ${wheel} has sha256 ${actual}, expected ${expected}" >&2
        exit 1
    fi
    echo "${wheel}"
}

# Unpacks the named members of a wheel (a zip file) from folder `prefix` into ${dest}/subdir.
unpack() {
    local wheel="$1" prefix="$2" subdir="$3"
    shift 3
    python3 - "${wheel}" "${prefix}" "${dest}/${subdir}" "$@" <<'EOF'
import pathlib
import sys
import zipfile

wheel, prefix, out_dir, *names = sys.argv[1:]
out = pathlib.Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as archive:
    members = set(archive.namelist())
    for name in names:
        member = prefix + name
        if member not in members:
            sys.exit(f"fetch-test-data: {member} is missing from {wheel}")
        (out / name).write_bytes(archive.read(member))
EOF
}

# The unpacked files are trusted only while a stamp records the wheel they came from.
unpack_if_stale() {
    local wheel_sha="$1" wheel="$2" prefix="$3" subdir="$4"
    shift 4
    local stamp="${dest}/${subdir}/.wheel-sha256"
    if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${wheel_sha}" ]]; then
        local name missing=0
        for name in "$@"; do
            [[ -f "${dest}/${subdir}/${name}" ]] || missing=1
        done
        [[ "${missing}" == 0 ]] && return 0
    fi
    if [[ -z "${wheel}" ]]; then
        return 1
    fi
    unpack "${wheel}" "${prefix}" "${subdir}" "$@"
    echo "${wheel_sha}" >"${stamp}"
}

main() {
    if unpack_if_stale "${pydicom_wheel_sha256}" "" "" pydicom "${pydicom_files[@]}" &&
        unpack_if_stale "${pydicom_data_wheel_sha256}" "" "" pydicom-data \
            "${pydicom_data_files[@]}"; then
        return 0
    fi

    local wheel
    wheel="$(fetch_wheel pydicom==3.0.2 'pydicom-3.0.2-*.whl' "${pydicom_wheel_sha256}")"
    unpack_if_stale "${pydicom_wheel_sha256}" "${wheel}" pydicom/data/test_files/ pydicom \
        "${pydicom_files[@]}"

    wheel="$(fetch_wheel pydicom-data==1.0.0 'pydicom_data-1.0.0-*.whl' \
        "${pydicom_data_wheel_sha256}")"
    unpack_if_stale "${pydicom_data_wheel_sha256}" "${wheel}" data_store/data/ pydicom-data \
        "${pydicom_data_files[@]}"
}

main
