//! `cairn-image`: command-line front end of the disk image writer; prints the layout as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cairn_image::esp::EspInputs;
use cairn_image::{write_image, ImageInputs, LayoutSpec, SystemTools};

const USAGE: &str = "usage: cairn-image --systemd-boot EFI --kernel VMLINUZ --initrd INITRD \
--squashfs ROOTFS --work-dir DIR --output IMG [--esp-mib N] [--root-mib N] [--state-mib N]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cairn-image: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let inputs = parse(&args)?;
    let layout = write_image(&mut SystemTools, &inputs)
        .with_context(|| format!("writing {}", inputs.output.display()))?;
    println!("{}", serde_json::to_string_pretty(&layout)?);
    Ok(())
}

fn parse(args: &[String]) -> Result<ImageInputs> {
    let mut spec = LayoutSpec::CONTRACT;
    let (mut efi, mut kernel, mut initrd, mut squashfs, mut work, mut output) =
        (None, None, None, None, None, None);
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let Some(value) = iter.next() else {
            bail!("{flag}: missing value\n{USAGE}");
        };
        let path = || Some(PathBuf::from(value));
        let mib = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag}: `{value}` is not a whole number of MiB"))
        };
        match flag.as_str() {
            "--systemd-boot" => efi = path(),
            "--kernel" => kernel = path(),
            "--initrd" => initrd = path(),
            "--squashfs" => squashfs = path(),
            "--work-dir" => work = path(),
            "--output" => output = path(),
            "--esp-mib" => spec.esp_mib = mib()?,
            "--root-mib" => spec.root_mib = mib()?,
            "--state-mib" => spec.state_mib = mib()?,
            other => bail!("{other}: unknown option\n{USAGE}"),
        }
    }
    let need = |value: Option<PathBuf>, flag: &str| {
        value.with_context(|| format!("{flag} is required\n{USAGE}"))
    };
    Ok(ImageInputs {
        spec,
        esp: EspInputs {
            systemd_boot_efi: need(efi, "--systemd-boot")?,
            kernel: need(kernel, "--kernel")?,
            initrd: need(initrd, "--initrd")?,
        },
        squashfs: need(squashfs, "--squashfs")?,
        work_dir: need(work, "--work-dir")?,
        output: need(output, "--output")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_all_options() {
        let inputs = parse(&args(
            "--systemd-boot e --kernel k --initrd i --squashfs s --work-dir w --output o --root-mib 512",
        ))
        .unwrap();
        assert_eq!(inputs.spec.root_mib, 512);
        assert_eq!(inputs.spec.esp_mib, 256);
        assert_eq!(inputs.output, PathBuf::from("o"));
    }

    #[test]
    fn names_the_missing_or_bad_option() {
        let err = parse(&args("--kernel k")).unwrap_err();
        assert!(
            err.to_string().starts_with("--systemd-boot is required"),
            "{err}"
        );
        let err = parse(&args("--esp-mib lots")).unwrap_err();
        assert!(err.to_string().contains("--esp-mib: `lots`"), "{err}");
        let err = parse(&args("--colour red")).unwrap_err();
        assert!(
            err.to_string().contains("--colour: unknown option"),
            "{err}"
        );
    }
}
