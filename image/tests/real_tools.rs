//! Builds a small image with the real sfdisk, mkfs.vfat, mtools and dd and reads it back.

use std::fs;
use std::process::Command;

use cairn_image::esp::EspInputs;
use cairn_image::{write_image, ImageInputs, LayoutSpec, SystemTools};

fn tool_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn small_image_has_the_contract_partitions_and_esp_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("boot.efi"), b"MZ fake efi").unwrap();
    fs::write(d.join("vmlinuz"), b"kernel bytes").unwrap();
    fs::write(d.join("initrd"), b"initrd bytes").unwrap();
    fs::write(d.join("root.sqfs"), vec![0x68u8; 300_000]).unwrap();
    let inputs = ImageInputs {
        spec: LayoutSpec {
            esp_mib: 64,
            root_mib: 4,
            state_mib: 16,
        },
        esp: EspInputs {
            systemd_boot_efi: d.join("boot.efi"),
            kernel: d.join("vmlinuz"),
            initrd: d.join("initrd"),
        },
        squashfs: d.join("root.sqfs"),
        work_dir: d.join("work"),
        output: d.join("disk.img"),
    };
    let layout = write_image(&mut SystemTools, &inputs).unwrap();
    let img = inputs.output.to_str().unwrap();

    let table: serde_json::Value =
        serde_json::from_str(&tool_output("sfdisk", &["--json", img])).unwrap();
    let parts = table["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(table["partitiontable"]["label"], "gpt");
    assert_eq!(parts.len(), 4);
    for (part, planned) in parts.iter().zip(&layout.partitions) {
        assert_eq!(part["name"], planned.label);
        assert_eq!(part["start"], planned.start_sector());
        assert_eq!(part["size"], planned.sectors());
        assert_eq!(part["type"], planned.type_guid);
    }

    let esp = format!("{img}@@1M");
    let entry = tool_output("mtype", &["-i", &esp, "::/loader/entries/cairn-a+3.conf"]);
    assert!(entry.contains("options cairn.slot=a"), "{entry}");
    assert_eq!(
        tool_output("mtype", &["-i", &esp, "::/cairn/b/initrd"]),
        "initrd bytes"
    );
    assert_eq!(
        tool_output("mtype", &["-i", &esp, "::/EFI/BOOT/BOOTX64.EFI"]),
        "MZ fake efi"
    );

    let bytes = fs::read(&inputs.output).unwrap();
    for slot in [1usize, 2] {
        let off = usize::try_from(layout.partitions[slot].offset_bytes).unwrap();
        assert!(
            bytes[off..off + 300_000].iter().all(|&b| b == 0x68),
            "slot {slot}"
        );
    }
    let state = usize::try_from(layout.partitions[3].offset_bytes).unwrap();
    assert!(bytes[state..state + 1024 * 1024].iter().all(|&b| b == 0));
}
