#!/bin/sh
# Build the lab's tiny test guest: a 512-byte boot sector (see guest.asm) with Debian's nasm.
# Usage: qemu-test/guest/build.sh [OUT]   (default OUT: build/guest/cairn-guest.img)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../build/guest/cairn-guest.img"}
command -v nasm >/dev/null 2>&1 || { echo "build.sh: nasm is missing (apt-get install nasm)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
nasm -f bin -w+all -o "$out.tmp" "$here/guest.asm"
size=$(stat -c %s "$out.tmp")
[ "$size" -eq 512 ] || { echo "build.sh: guest is $size bytes, expected 512" >&2; exit 1; }
mv "$out.tmp" "$out"
echo "$out"
