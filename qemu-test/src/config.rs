//! What a node looks like (boot mode, CPUs, memory, disks, NICs) and the QEMU command line for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::accel::Accel;

/// How the node boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootMode {
    /// OVMF → systemd-boot on the image's ESP → a slot's loader entry.
    Uefi,
    /// QEMU loads build/out/vmlinuz and initrd itself (`-kernel`, `-initrd`, `-append`).
    DirectKernel,
}

/// Bus of an extra data disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Virtio,
    /// SATA on an ich9-ahci controller (emulates SMART).
    Ahci,
    /// NVMe (emulates SMART; needs a serial).
    Nvme,
}

/// An extra, blank data disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub bus: Bus,
    pub size_bytes: u64,
    pub serial: String,
    /// Left out of the next launch (a disk pulled while the node was off, or unplugged).
    pub absent: bool,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicSpec {
    /// User-mode networking with `hostfwd=tcp:127.0.0.1:<port>-:443` (the management NIC).
    Management,
    /// Plain user-mode networking with no forwards.
    User,
    /// A host tap device (made by [`crate::labnet::LabNet::tap`]) that the lab network
    /// enslaves to one of its bridges once QEMU has opened it.
    Tap(String),
}

/// Everything about one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub mode: BootMode,
    pub cpus: u8,
    pub memory_mib: u32,
    /// Slot booted in direct-kernel mode.
    pub slot: char,
    /// Extra kernel command-line words (direct-kernel: appended; UEFI: appended to every
    /// loader entry's `options`).
    pub cmdline: Vec<String>,
    /// Host port forwarded to the management NIC's 443 (None: pick a free one).
    pub api_port: Option<u16>,
    pub disks: Vec<DiskSpec>,
    pub nics: Vec<NicSpec>,
    /// MAC addresses given to NICs by index (see [`NodeConfig::nic_with_mac`]); a NIC not
    /// listed gets [`mac`]'s.
    pub nic_macs: BTreeMap<usize, String>,
    pub watchdog: bool,
    /// Empty PCIe root ports kept for disks hot-plugged later (see [`disk_port`]).
    pub hotplug_ports: usize,
    /// QEMU CPU model (`-cpu`); None: the accelerator's (`host` under KVM; QEMU's default
    /// `qemu64` under TCG, no SSE4.2).
    pub cpu_model: Option<String>,
    /// QEMU cache mode of the data disks given at launch (`cache=`); None: QEMU's default
    /// (`writeback`: reads and writes go through the build machine's page cache).
    pub data_disk_cache: Option<String>,
}

impl NodeConfig {
    /// A node with 1 vCPU, 1 GiB, one management NIC, a watchdog and no data disks.
    pub fn new(name: &str, mode: BootMode) -> NodeConfig {
        NodeConfig {
            name: name.to_string(),
            mode,
            cpus: 1,
            memory_mib: 1024,
            slot: 'a',
            cmdline: Vec::new(),
            api_port: None,
            disks: Vec::new(),
            nics: vec![NicSpec::Management],
            nic_macs: BTreeMap::new(),
            watchdog: true,
            hotplug_ports: 0,
            cpu_model: None,
            data_disk_cache: None,
        }
    }

    /// Adds a blank data disk of `size_mib` on `bus`.
    pub fn disk(mut self, bus: Bus, size_mib: u64) -> NodeConfig {
        let serial = format!("CAIRNLAB{:04}", self.disks.len() + 1);
        self.disks.push(DiskSpec {
            bus,
            size_bytes: size_mib << 20,
            serial,
            absent: false,
        });
        self
    }

    /// Keeps `n` empty PCIe root ports for disks hot-plugged while the node runs.
    pub fn hotplug_ports(mut self, n: usize) -> NodeConfig {
        self.hotplug_ports = n;
        self
    }

    /// Adds a NIC.
    pub fn nic(mut self, nic: NicSpec) -> NodeConfig {
        self.nics.push(nic);
        self
    }

    /// Adds a NIC with a MAC address of the caller's choosing (e.g. the cluster lab's
    /// per-network plan), instead of [`mac`]'s.
    pub fn nic_with_mac(mut self, nic: NicSpec, mac: &str) -> NodeConfig {
        self.nic_macs.insert(self.nics.len(), mac.to_string());
        self.nics.push(nic);
        self
    }

    /// Gives the NIC number `nic` (0: the management NIC) this MAC address.
    pub fn set_nic_mac(mut self, nic: usize, mac: &str) -> NodeConfig {
        self.nic_macs.insert(nic, mac.to_string());
        self
    }

    /// The MAC address of NIC number `nic` of this node, node number `node_no` of its lab.
    pub fn nic_mac(&self, node_no: u32, nic: usize) -> String {
        self.nic_macs
            .get(&nic)
            .cloned()
            .unwrap_or_else(|| mac(node_no, nic))
    }

    /// Adds kernel command-line words.
    pub fn cmdline(mut self, words: &[&str]) -> NodeConfig {
        self.cmdline.extend(words.iter().map(|w| w.to_string()));
        self
    }

    /// Sets vCPUs (1–2) and memory.
    pub fn size(mut self, cpus: u8, memory_mib: u32) -> NodeConfig {
        self.cpus = cpus;
        self.memory_mib = memory_mib;
        self
    }

    /// Sets the QEMU CPU model (`-cpu <model>`, e.g. `max`: every feature TCG emulates,
    /// SSE4.2 included, so the guest's crc32c-intel driver can load).
    pub fn cpu_model(mut self, model: &str) -> NodeConfig {
        self.cpu_model = Some(model.to_string());
        self
    }

    /// Sets the QEMU cache mode of the data disks (`none`: O_DIRECT on the image files, so
    /// the build machine's page cache does not answer the guest's I/O).
    pub fn data_disk_cache(mut self, mode: &str) -> NodeConfig {
        self.data_disk_cache = Some(mode.to_string());
        self
    }

    /// Forwards this host port to the node's 443.
    pub fn api_port(mut self, port: u16) -> NodeConfig {
        self.api_port = Some(port);
        self
    }

    /// The direct-kernel command line.
    pub fn direct_cmdline(&self) -> String {
        let mut words = vec![
            format!("cairn.slot={}", self.slot),
            "console=ttyS0,115200".to_string(),
            "cairn.lab=1".to_string(),
        ];
        words.extend(self.cmdline.iter().cloned());
        words.join(" ")
    }
}

/// Files and sockets of one node's QEMU.
#[derive(Debug, Clone)]
pub struct QemuPaths {
    pub disk: PathBuf,
    pub vars: PathBuf,
    pub data_disks: Vec<PathBuf>,
    pub serial_sock: PathBuf,
    pub shell_sock: PathBuf,
    pub qmp_sock: PathBuf,
    /// A second QMP monitor, read only by the host-disk watcher (`host_disk.rs`).
    pub qmp_watch_sock: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub ovmf_code: PathBuf,
}

/// Device id of NIC number `i` (for `set_link`).
pub fn nic_id(i: usize) -> String {
    format!("nic{i}")
}

/// Device id of data disk number `i` (for `device_del`).
pub fn disk_id(i: usize) -> String {
    format!("data{i}")
}

/// The PCIe root port data disk number `i` sits on (virtio and NVMe disks get their own port,
/// so they can be unplugged with `device_del` and plugged in again on q35).
pub fn disk_port(i: usize) -> String {
    format!("dport{i}")
}

/// A locally administered MAC for NIC `nic` of node number `node`.
pub fn mac(node: u32, nic: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        // The low byte of each: the pid keeps concurrent labs apart, the node and NIC
        // numbers are small.
        std::process::id() & 0xff,
        node & 0xff,
        nic & 0xff
    )
}

/// The QEMU arguments (without the program) for `cfg` under `accel` (the lab run's
/// accelerator: `-accel kvm -cpu host`, or `-accel tcg`; a node's own CPU model wins).
pub fn qemu_args(
    cfg: &NodeConfig,
    node_no: u32,
    paths: &QemuPaths,
    api_port: u16,
    accel: Accel,
) -> Vec<String> {
    // `-accel NAME` after the machine, the CPU model (`-cpu …`) after the size
    let mut accel_args = accel.qemu_args(cfg.cpu_model.as_deref());
    let cpu_args = accel_args.split_off(2);
    let mut a: Vec<String> = ["-name", &cfg.name, "-machine", "q35"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(accel_args);
    a.extend([
        "-smp".to_string(),
        cfg.cpus.to_string(),
        "-m".to_string(),
        cfg.memory_mib.to_string(),
    ]);
    a.extend(cpu_args);
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    // ttyS0: the console; QEMU waits for the harness to connect so no line is lost.
    push(&[
        "-chardev",
        &format!(
            "socket,id=con0,path={},server=on,wait=on",
            p(&paths.serial_sock)
        ),
        "-serial",
        "chardev:con0",
    ]);
    // ttyS1: the lab shell.
    push(&[
        "-chardev",
        &format!(
            "socket,id=shell0,path={},server=on,wait=off",
            p(&paths.shell_sock)
        ),
        "-serial",
        "chardev:shell0",
    ]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp0,path={},server=on,wait=off",
            p(&paths.qmp_sock)
        ),
        "-mon",
        "chardev=qmp0,mode=control",
    ]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmpw,path={},server=on,wait=off",
            p(&paths.qmp_watch_sock)
        ),
        "-mon",
        "chardev=qmpw,mode=control",
    ]);
    if cfg.mode == BootMode::Uefi {
        push(&[
            "-drive",
            &format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                p(&paths.ovmf_code)
            ),
            "-drive",
            &format!("if=pflash,format=raw,unit=1,file={}", p(&paths.vars)),
        ]);
    }
    // -kernel claims boot index 0 for itself; only UEFI boots from the disk.
    let boot_dev = match cfg.mode {
        BootMode::Uefi => "virtio-blk-pci,drive=boot0,id=bootdisk,bootindex=0",
        BootMode::DirectKernel => "virtio-blk-pci,drive=boot0,id=bootdisk",
    };
    push(&[
        "-drive",
        &format!(
            "file={},format=raw,if=none,id=boot0,discard=unmap",
            p(&paths.disk)
        ),
        "-device",
        boot_dev,
    ]);
    let mut ahci = 0;
    for i in 0..cfg.disks.len() + cfg.hotplug_ports {
        if cfg.disks.get(i).is_none_or(|d| d.bus != Bus::Ahci) {
            push(&[
                "-device",
                &format!("pcie-root-port,id={},chassis={}", disk_port(i), i + 1),
            ]);
        }
    }
    for (i, (disk, spec)) in paths.data_disks.iter().zip(&cfg.disks).enumerate() {
        if spec.absent {
            continue;
        }
        let drive = format!("drv{i}");
        let cache = cfg
            .data_disk_cache
            .as_ref()
            .map(|c| format!(",cache={c}"))
            .unwrap_or_default();
        push(&[
            "-drive",
            &format!("file={},format=raw,if=none,id={drive}{cache}", p(disk)),
        ]);
        let id = disk_id(i);
        let dev = match spec.bus {
            Bus::Virtio => format!(
                "virtio-blk-pci,drive={drive},id={id},serial={},bus={}",
                spec.serial,
                disk_port(i)
            ),
            Bus::Nvme => format!(
                "nvme,drive={drive},id={id},serial={},bus={}",
                spec.serial,
                disk_port(i)
            ),
            Bus::Ahci => {
                let ctl = format!("ahci{ahci}");
                ahci += 1;
                push(&["-device", &format!("ich9-ahci,id={ctl}")]);
                format!(
                    "ide-hd,drive={drive},id={id},bus={ctl}.0,serial={}",
                    spec.serial
                )
            }
        };
        push(&["-device", &dev]);
    }
    for (i, nic) in cfg.nics.iter().enumerate() {
        let netdev = match nic {
            NicSpec::Management => {
                format!("user,id=net{i},hostfwd=tcp:127.0.0.1:{api_port}-:443")
            }
            NicSpec::User => format!("user,id=net{i}"),
            NicSpec::Tap(ifname) => {
                format!("tap,id=net{i},ifname={ifname},script=no,downscript=no")
            }
        };
        push(&[
            "-netdev",
            &netdev,
            "-device",
            &format!(
                "virtio-net-pci,netdev=net{i},id={},mac={}",
                nic_id(i),
                cfg.nic_mac(node_no, i)
            ),
        ]);
    }
    if cfg.watchdog {
        push(&["-device", "i6300esb,id=watchdog0"]);
    }
    if cfg.mode == BootMode::DirectKernel {
        push(&[
            "-kernel",
            &p(&paths.kernel),
            "-initrd",
            &p(&paths.initrd),
            "-append",
            &cfg.direct_cmdline(),
        ]);
    }
    a
}

fn p(path: &Path) -> String {
    // QEMU option values use ',' as a separator; double it to keep it literal.
    path.display().to_string().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(n: usize) -> QemuPaths {
        QemuPaths {
            disk: "/r/n1/disk.img".into(),
            vars: "/r/n1/OVMF_VARS.fd".into(),
            data_disks: (0..n)
                .map(|i| PathBuf::from(format!("/r/n1/data{i}.img")))
                .collect(),
            serial_sock: "/s/serial.sock".into(),
            shell_sock: "/s/shell.sock".into(),
            qmp_sock: "/s/qmp.sock".into(),
            qmp_watch_sock: "/s/qmp-watch.sock".into(),
            kernel: "/b/vmlinuz".into(),
            initrd: "/b/initrd".into(),
            ovmf_code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
        }
    }

    #[test]
    fn direct_kernel_args() {
        let cfg = NodeConfig::new("n1", BootMode::DirectKernel)
            .cmdline(&["cairn.init=/lib/systemd/systemd"]);
        let a = qemu_args(&cfg, 1, &paths(0), 8443, Accel::Tcg).join(" ");
        assert!(a.contains("-machine q35 -accel tcg"));
        assert!(!a.contains("kvm"));
        assert!(a.contains(
            "-append cairn.slot=a console=ttyS0,115200 cairn.lab=1 cairn.init=/lib/systemd/systemd"
        ));
        assert!(a.contains("hostfwd=tcp:127.0.0.1:8443-:443"));
        assert!(a.contains("path=/s/serial.sock,server=on,wait=on"));
        assert!(a.contains("-device i6300esb"));
        assert!(!a.contains("pflash"));
        assert!(!a.contains("-cpu"), "QEMU's default CPU model unless asked");
    }

    #[test]
    fn cpu_model_is_passed_to_qemu() {
        let cfg = NodeConfig::new("n1", BootMode::DirectKernel).cpu_model("max");
        let a = qemu_args(&cfg, 1, &paths(0), 8443, Accel::Tcg).join(" ");
        assert!(a.contains("-smp 1 -m 1024 -cpu max "), "{a}");
    }

    #[test]
    fn data_disk_cache_mode_is_passed_to_qemu() {
        let cfg = NodeConfig::new("n1", BootMode::DirectKernel).disk(Bus::Virtio, 64);
        let a = qemu_args(&cfg, 1, &paths(1), 8443, Accel::Tcg).join(" ");
        assert!(
            a.contains("file=/r/n1/data0.img,format=raw,if=none,id=drv0 "),
            "{a}"
        );
        let a = qemu_args(&cfg.data_disk_cache("none"), 1, &paths(1), 8443, Accel::Tcg).join(" ");
        assert!(
            a.contains("file=/r/n1/data0.img,format=raw,if=none,id=drv0,cache=none "),
            "{a}"
        );
    }

    #[test]
    fn uefi_args_and_disks() {
        let cfg = NodeConfig::new("n1", BootMode::Uefi)
            .disk(Bus::Virtio, 64)
            .disk(Bus::Ahci, 64)
            .disk(Bus::Nvme, 64)
            .nic(NicSpec::User)
            .size(2, 2048);
        let a = qemu_args(&cfg, 1, &paths(3), 1234, Accel::Tcg).join(" ");
        assert!(a.contains(
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        ));
        assert!(a.contains("if=pflash,format=raw,unit=1,file=/r/n1/OVMF_VARS.fd"));
        assert!(a.contains("virtio-blk-pci,drive=drv0,id=data0,serial=CAIRNLAB0001"));
        assert!(a.contains("ich9-ahci,id=ahci0"));
        assert!(a.contains("ide-hd,drive=drv1,id=data1,bus=ahci0.0,serial=CAIRNLAB0002"));
        assert!(a.contains("nvme,drive=drv2,id=data2,serial=CAIRNLAB0003"));
        assert!(a.contains("-netdev user,id=net1 "));
        assert!(a.contains("id=nic1"));
        assert!(a.contains("-smp 2 -m 2048"));
        assert!(!a.contains("-kernel"));
    }

    #[test]
    fn hotplug_ports_and_absent_disks() {
        let mut cfg = NodeConfig::new("n1", BootMode::DirectKernel)
            .disk(Bus::Virtio, 64)
            .disk(Bus::Ahci, 64)
            .disk(Bus::Nvme, 64)
            .hotplug_ports(1);
        cfg.disks[2].absent = true;
        let a = qemu_args(&cfg, 1, &paths(3), 1234, Accel::Tcg).join(" ");
        assert!(a.contains("pcie-root-port,id=dport0,chassis=1"));
        assert!(!a.contains("id=dport1,"), "AHCI disks need no root port");
        assert!(a.contains("pcie-root-port,id=dport2,chassis=3"));
        assert!(
            a.contains("pcie-root-port,id=dport3,chassis=4"),
            "the spare port"
        );
        assert!(a.contains("serial=CAIRNLAB0001,bus=dport0"));
        assert!(!a.contains("drv2"), "the absent disk is left out: {a}");
    }

    #[test]
    fn accelerator_arguments() {
        let cfg = NodeConfig::new("n1", BootMode::DirectKernel);
        let kvm = qemu_args(&cfg, 1, &paths(0), 8443, Accel::Kvm).join(" ");
        assert!(
            kvm.contains("-machine q35 -accel kvm -smp 1 -m 1024 -cpu host -nodefaults"),
            "{kvm}"
        );
        assert!(!kvm.contains("tcg"), "{kvm}");
        let tcg = qemu_args(&cfg, 1, &paths(0), 8443, Accel::Tcg).join(" ");
        assert!(
            tcg.contains("-machine q35 -accel tcg -smp 1 -m 1024 -nodefaults"),
            "{tcg}"
        );
        // a node's own CPU model wins under either accelerator
        let max = cfg.cpu_model("max");
        let kvm = qemu_args(&max, 1, &paths(0), 8443, Accel::Kvm).join(" ");
        assert!(kvm.contains("-accel kvm -smp 1 -m 1024 -cpu max "), "{kvm}");
        let tcg = qemu_args(&max, 1, &paths(0), 8443, Accel::Tcg).join(" ");
        assert!(tcg.contains("-accel tcg -smp 1 -m 1024 -cpu max "), "{tcg}");
    }

    #[test]
    fn chosen_macs_replace_the_default_ones() {
        let cfg = NodeConfig::new("n1", BootMode::DirectKernel)
            .set_nic_mac(0, "52:54:00:01:01:00")
            .nic_with_mac(NicSpec::User, "52:54:00:77:01:01")
            .nic(NicSpec::User);
        assert_eq!(cfg.nic_mac(1, 0), "52:54:00:01:01:00");
        assert_eq!(cfg.nic_mac(1, 1), "52:54:00:77:01:01");
        assert_eq!(cfg.nic_mac(1, 2), mac(1, 2));
        let a = qemu_args(&cfg, 1, &paths(0), 8443, Accel::Tcg).join(" ");
        assert!(a.contains("id=nic0,mac=52:54:00:01:01:00"), "{a}");
        assert!(a.contains("id=nic1,mac=52:54:00:77:01:01"), "{a}");
        assert!(a.contains(&format!("id=nic2,mac={}", mac(1, 2))), "{a}");
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        assert_eq!(p(Path::new("/a,b")), "/a,,b");
    }
}
