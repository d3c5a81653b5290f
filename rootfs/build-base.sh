#!/usr/bin/env bash
# Builds the Debian 12 base root filesystem for Cairn with mmdebstrap into $1 (a directory).
# Docs, man pages and locales are excluded at unpack time; apt's caches and lists are removed.
# update-initramfs is diverted to /bin/true: Cairn builds its own initramfs, and Debian's
# (mkinitramfs of every module, run by the kernel's postinst) took half of the build time.
# libvirtd's QEMU driver resolves its compiled-in user `libvirt-qemu` before reading
# qemu.conf (which runs QEMU as root), so the user must exist; Debian's libvirt-daemon-system
# would create it but also brings systemd units and polkit.
set -euo pipefail
out=${1:?usage: build-base.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
packages=$(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$' | paste -sd, -)
# Use the build machine's own Debian sources so no mirror is hard-coded here.
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
rm -rf "$out.tmp"
mmdebstrap --variant=minbase --mode=root \
  --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && ln -sf /bin/true "$1/usr/sbin/update-initramfs"' \
  --customize-hook='chroot "$1" useradd --system --user-group --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/apt/*' \
  bookworm "$out.tmp" "$sources"
rm -rf "$out"
mv "$out.tmp" "$out"
