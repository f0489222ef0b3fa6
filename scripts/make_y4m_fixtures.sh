#!/bin/sh
# Writes small Y4M streams with ffmpeg, and the luma plane of each as ffmpeg decodes it,
# into tests/fixtures/y4m/. The Y4M reader's tests compare their luma with these files.
# Needs ffmpeg (Debian package ffmpeg); the committed fixtures came from ffmpeg 5.1.
set -ex

out="$(dirname "$0")/../tests/fixtures/y4m"
mkdir -p "$out"

# Name, pixel format, frame rate, chroma sample location. 17x9 is odd in both
# directions, so chroma sizes round up. ffmpeg names 4:2:0 by the chroma location:
# unspecified is C420jpeg, left is C420mpeg2 and topleft is C420paldv.
while read -r name pix_fmt rate location; do
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=18x10:rate=$rate" \
        -vf scale=17:9 -frames:v 3 -pix_fmt "$pix_fmt" \
        -chroma_sample_location "$location" -f yuv4mpegpipe "$out/$name.y4m"
    ffmpeg -nostdin -v error -y -i "$out/$name.y4m" -vf extractplanes=y -f rawvideo \
        "$out/$name.luma"
done <<LIST
yuv420p yuv420p 30000/1001 unspecified
yuv420p_mpeg2 yuv420p 25 left
yuv420p_paldv yuv420p 25 topleft
yuv422p yuv422p 25 unspecified
yuv444p yuv444p 25 unspecified
gray gray 12 unspecified
LIST
