#!/bin/sh
# Build the lab's tiny test guest (see guest.asm) with Debian's nasm, in both variants:
#   OUT_DIR/cairn-guest.img       no ACPI code: ignores the power button (forced off by the host)
#   OUT_DIR/cairn-guest-acpi.img  assembled with -DACPI_POWEROFF: powers off on the power button
# Each is one 512-byte boot sector. Prints the two paths.
# Usage: qemu-test/guest/build.sh [OUT_DIR]   (default OUT_DIR: build/guest)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-"$here/../../build/guest"}
command -v nasm >/dev/null 2>&1 || { echo "build.sh: nasm is missing (apt-get install nasm)" >&2; exit 1; }
mkdir -p "$dir"
build() { # OUT [NASM_ARGS...]
    out=$1
    shift
    # A temporary file of this run's own ($$): two scenarios running side by side build the
    # guest at the same time, and a shared name let one move the other's file away.
    tmp="$out.tmp.$$"
    nasm -f bin -w+all "$@" -o "$tmp" "$here/guest.asm"
    size=$(stat -c %s "$tmp")
    [ "$size" -eq 512 ] || { rm -f "$tmp"; echo "build.sh: $out is $size bytes, expected 512" >&2; exit 1; }
    mv -f "$tmp" "$out"
    echo "$out"
}
build "$dir/cairn-guest.img"
build "$dir/cairn-guest-acpi.img" -DACPI_POWEROFF
