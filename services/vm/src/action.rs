//! Typed VM actions that run as tasks: each is checked first (a refusal changes nothing),
//! then run with progress; the finished task's message says what was done.

use crate::error::VmError;
use crate::service::ShutdownOutcome;
use crate::{NewClone, VmSpec, Vms};
use cairn_core::alert::{Progress, TaskAction};
use std::time::Duration;

/// A VM action that runs as a task.
#[derive(Debug, Clone)]
pub enum VmTask {
    /// Define a new VM (its disks made on the storage pool) from a spec.
    Create(VmSpec),
    /// Start a defined VM.
    Start { vm: String },
    /// Ask the guest to power off; force it off after `timeout`.
    Shutdown { vm: String, timeout: Duration },
    /// Make `clones` of `vm` (from its `snapshot`, else its disks now). `batch`: the request
    /// listed the clones, so a refused name is `clones[i].name`.
    Clone {
        vm: String,
        clones: Vec<NewClone>,
        snapshot: Option<String>,
        batch: bool,
    },
    /// Make VM `name` from `snapshot` of `vm`.
    Restore {
        vm: String,
        snapshot: String,
        name: String,
        autostart: Option<bool>,
    },
}

impl VmTask {
    /// Check the action without changing anything; a refusal names the field at fault.
    pub fn check(&self, vms: &Vms) -> Result<(), VmError> {
        match self {
            VmTask::Create(spec) => vms.check(spec),
            VmTask::Start { vm } | VmTask::Shutdown { vm, .. } => vms.get(vm).map(drop),
            VmTask::Clone {
                vm, clones, batch, ..
            } => clones.iter().enumerate().try_for_each(|(i, c)| {
                vms.check_new_name(vm, &c.name).map_err(|e| match e {
                    VmError::Invalid(mut inv) if *batch => {
                        inv.field = format!("clones[{i}].{}", inv.field);
                        VmError::Invalid(inv)
                    }
                    e => e,
                })
            }),
            VmTask::Restore { vm, name, .. } => vms.check_new_name(vm, name),
        }
    }
}

impl TaskAction for VmTask {
    type Service = Vms;
    type Error = VmError;

    /// The task kind the API and the events show.
    fn kind(&self) -> &'static str {
        match self {
            VmTask::Create(_) => "vm.create",
            VmTask::Start { .. } => "vm.start",
            VmTask::Shutdown { .. } => "vm.shutdown",
            VmTask::Clone { .. } => "vm.clone",
            VmTask::Restore { .. } => "vm.restore",
        }
    }

    /// The task's first message.
    fn message(&self) -> String {
        match self {
            VmTask::Create(spec) => format!("creating VM {}", spec.name),
            VmTask::Start { vm } => format!("starting VM {vm}"),
            VmTask::Shutdown { vm, .. } => format!("shutting down VM {vm}"),
            VmTask::Clone { vm, clones, .. } => {
                let list: Vec<&str> = clones.iter().map(|c| c.name.as_str()).collect();
                format!("cloning VM {vm} as {}", list.join(", "))
            }
            VmTask::Restore {
                vm, snapshot, name, ..
            } => format!("restoring snapshot {snapshot} of VM {vm} as {name}"),
        }
    }

    /// Run the action (blocks); `Ok` carries the finished task's message.
    fn run(self, vms: &Vms, progress: &dyn Progress) -> Result<String, VmError> {
        match self {
            VmTask::Create(spec) => vms
                .create(&spec, progress)
                .map(|s| format!("created VM {}", s.record.name)),
            VmTask::Start { vm } => vms.start(&vm).map(|()| format!("VM {vm} is running")),
            VmTask::Shutdown { vm, timeout } => {
                vms.shutdown(&vm, timeout, progress).map(|o| match o {
                    ShutdownOutcome::Graceful => format!("VM {vm} shut down"),
                    ShutdownOutcome::Forced => format!(
                        "VM {vm} did not shut down within {} s and was powered off",
                        timeout.as_secs()
                    ),
                    ShutdownOutcome::AlreadyOff => format!("VM {vm} was not running"),
                })
            }
            VmTask::Clone {
                vm,
                clones,
                snapshot,
                ..
            } => vms
                .clone_vms(&vm, &clones, snapshot.as_deref(), progress)
                .map(|made| {
                    let names: Vec<&str> =
                        made.vms.iter().map(|s| s.record.name.as_str()).collect();
                    format!(
                        "created VM {} from {vm} (disk volumes {:.1} s, libvirt {:.1} s)",
                        names.join(", "),
                        made.volumes_took.as_secs_f64(),
                        made.define_took.as_secs_f64()
                    )
                }),
            VmTask::Restore {
                vm,
                snapshot,
                name,
                autostart,
            } => vms
                .clone_vm(&vm, &name, Some(&snapshot), autostart, progress)
                .map(|s| {
                    format!(
                        "created VM {} from snapshot {snapshot} of {vm}",
                        s.record.name
                    )
                }),
        }
    }
}
