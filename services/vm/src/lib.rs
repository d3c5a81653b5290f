//! cairn-vm: VM specs, libvirt domain XML, lifecycle through libvirt, clones and snapshots.
