//! Random identifiers: libvirt UUIDs and locally administered MAC addresses.

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The kernel's random source does not fail on Linux once booted; if it ever did, a
    // time-derived value still keeps names apart on this node.
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % t.len()];
        }
    }
    b
}

/// A random (version 4) UUID in its text form.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// A random MAC in QEMU's `52:54:00` range (locally administered, unicast). Generated once
/// per NIC and stored with the VM, so it never changes.
pub fn new_mac() -> String {
    let b: [u8; 3] = random();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_macs_have_their_forms() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uuid());
        let m = new_mac();
        assert!(m.starts_with("52:54:00:") && m.len() == 17, "{m}");
        crate::spec::check_mac("mac", &m).unwrap();
    }
}
