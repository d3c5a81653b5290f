//! Clones of a VM: copy-on-write clones of its disks (or of one of its snapshots), made for
//! many clones in one storage batch per pool while libvirt defines them, all or nothing.

use crate::error::VmError;
use crate::hypervisor::{HvError, RunState};
use crate::service::{new_record, vol_err, VmStatus, Vms};
use crate::spec::{self, Disk, DiskKind, DiskSource, VmRecord, VmSpec};
use crate::volumes::disk_volume;
use cairn_core::alert::Progress;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The VMs a batch clone made, and where its time went.
#[derive(Debug, Clone)]
pub struct ClonedVms {
    pub vms: Vec<VmStatus>,
    /// Making every disk volume (the storage batches).
    pub volumes_took: Duration,
    /// Defining the VMs in libvirt (while storage made the volumes) and then storing their
    /// records.
    pub define_took: Duration,
}

/// One clone of a batch ([`Vms::clone_vms`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClone {
    pub name: String,
    /// Autostart of the new VM; the source's when absent.
    #[serde(default)]
    pub autostart: Option<bool>,
}

/// The spec of a clone `new_name` of VM `src` (of its snapshot `snapshot`): the same shape,
/// disks cloned, CD-ROMs kept, new MACs.
fn clone_spec(
    src: &VmRecord,
    new_name: &str,
    snapshot: Option<&str>,
    autostart: Option<bool>,
) -> VmSpec {
    VmSpec {
        name: new_name.to_string(),
        vcpus: src.vcpus,
        memory_mib: src.memory_mib,
        disks: src
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| spec::DiskSpec {
                bus: Some(d.bus),
                source: match d.kind {
                    DiskKind::Disk => DiskSource::Clone {
                        vm: src.name.clone(),
                        disk: i,
                        snapshot: snapshot.map(str::to_string),
                    },
                    DiskKind::Cdrom => {
                        let (share, file) =
                            d.volume.split_once('/').unwrap_or((d.volume.as_str(), ""));
                        DiskSource::Iso {
                            pool: d.pool.clone(),
                            share: share.to_string(),
                            file: file.to_string(),
                        }
                    }
                },
            })
            .collect(),
        nics: src
            .nics
            .iter()
            .map(|n| spec::NicSpec {
                bridge: n.bridge.clone(),
                mac: None,
            })
            .collect(),
        boot: src.boot.clone(),
        cpu_model: Some(src.cpu_model.clone()),
        machine: src.machine,
        autostart: autostart.unwrap_or(src.autostart),
    }
}

impl Vms {
    /// A new VM `new_name` whose disks are copy-on-write clones of `source`'s (or of its
    /// snapshot `snapshot`), with new MACs on the same bridges. A running source gives a
    /// crash-consistent copy.
    pub fn clone_vm(
        &self,
        source: &str,
        new_name: &str,
        snapshot: Option<&str>,
        autostart: Option<bool>,
        progress: &dyn Progress,
    ) -> Result<VmStatus, VmError> {
        let clone = NewClone {
            name: new_name.to_string(),
            autostart,
        };
        let mut made = self.clone_vms(source, &[clone], snapshot, progress)?;
        Ok(made.vms.remove(0))
    }

    /// Many clones of `source` (see [`Vms::clone_vm`]) in one go: every disk volume of every
    /// clone in one storage batch per pool while, at the same time, each clone is defined in
    /// libvirt (its disks' device paths are known beforehand), then one store write. All or
    /// nothing: on a failure whatever was made is removed (and undefined) again and the error
    /// names the clone (or its volume) that failed. Each clone's `autostart` defaults to the
    /// source's.
    pub fn clone_vms(
        &self,
        source: &str,
        clones: &[NewClone],
        snapshot: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<ClonedVms, VmError> {
        let _g = self.lock_change();
        let src = self.record(source)?;
        if let Some(s) = snapshot {
            if !src.snapshots.contains_key(s) {
                return Err(VmError::NoSnapshot {
                    vm: source.into(),
                    snapshot: s.into(),
                });
            }
        }
        if clones.is_empty() {
            return Err(spec::invalid("clones", "name at least one clone").into());
        }
        let facts = self.facts()?;
        let mut specs = Vec::new();
        for (i, c) in clones.iter().enumerate() {
            let field = if clones.len() == 1 {
                "name".to_string()
            } else {
                format!("clones[{i}].name")
            };
            spec::check_name(&field, &c.name)?;
            if facts.vms.contains(&c.name) || clones[..i].iter().any(|o| o.name == c.name) {
                return Err(
                    spec::invalid(&field, format!("a VM named {} exists already", c.name)).into(),
                );
            }
            let spec = clone_spec(&src, &c.name, snapshot, c.autostart);
            spec::validate(&spec, &facts)?;
            specs.push(spec);
        }
        // Every disk of every clone, grouped by pool: (disk index, source volume, new volume).
        let mut by_pool: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (i, d) in src.disks.iter().enumerate() {
            if d.kind != DiskKind::Disk {
                continue;
            }
            let source_vol = match snapshot {
                None => d.volume.clone(),
                Some(s) => src.snapshots[s].get(i).cloned().flatten().ok_or_else(|| {
                    VmError::NoSnapshot {
                        vm: source.into(),
                        snapshot: s.into(),
                    }
                })?,
            };
            for c in clones {
                by_pool
                    .entry(d.pool.clone())
                    .or_default()
                    .push((source_vol.clone(), disk_volume(&c.name, i)));
            }
        }
        for d in src.disks.iter().filter(|d| d.kind == DiskKind::Cdrom) {
            if !self.host.is_file(Path::new(&d.path)) {
                return Err(spec::invalid(
                    "disks",
                    format!("the CD-ROM image {} of VM {source} is gone", d.path),
                )
                .into());
            }
        }
        let total = by_pool.values().map(Vec::len).sum::<usize>();
        progress.progress(
            5,
            &format!(
                "cloning {total} disk volume(s) for {} VM(s) in one storage batch",
                clones.len()
            ),
        );
        // The records first: storage names a volume's device path before making it, so
        // libvirt defines the clones while storage makes their volumes.
        let records: Vec<VmRecord> = specs
            .iter()
            .map(|spec| {
                let disks = src
                    .disks
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match d.kind {
                        DiskKind::Disk => {
                            let vol = disk_volume(&spec.name, i);
                            Disk {
                                kind: DiskKind::Disk,
                                bus: d.bus,
                                pool: d.pool.clone(),
                                path: self
                                    .volumes
                                    .path(&d.pool, &vol)
                                    .to_string_lossy()
                                    .into_owned(),
                                origin: Some(match snapshot {
                                    None => d.volume.clone(),
                                    Some(s) => src.snapshots[s]
                                        .get(i)
                                        .cloned()
                                        .flatten()
                                        .unwrap_or_default(),
                                }),
                                volume: vol,
                                replication: None,
                            }
                        }
                        DiskKind::Cdrom => d.clone(),
                    })
                    .collect();
                new_record(spec, disks)
            })
            .collect();
        let ((volumes, volumes_took), (defined, define_failed, defines_took)) =
            std::thread::scope(|s| {
                let storage = s.spawn(|| {
                    let t0 = Instant::now();
                    (
                        self.clone_volumes(source, &by_pool, clones.len()),
                        t0.elapsed(),
                    )
                });
                let defines = self.define_clones(&records, progress);
                match storage.join() {
                    Ok(v) => (v, defines),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            });
        let t_define = Instant::now();
        let made = match volumes {
            Ok(made) => made,
            Err(e) => {
                // Storage removed what it made; the definitions go too.
                self.undo_clones(&defined, &[]);
                return Err(e);
            }
        };
        let made_pairs: Vec<(String, String)> = made
            .iter()
            .map(|(p, v, _)| (p.clone(), v.clone()))
            .collect();
        if let Some((vm, e)) = define_failed {
            self.undo_clones(&defined, &made_pairs);
            return Err(VmError::DefineClone { vm, source: e });
        }
        // Storage made the volumes where it said it would; were it to differ, the record and
        // the domain follow storage.
        let mut records = records;
        for r in &mut records {
            let mut moved = false;
            for d in r.disks.iter_mut().filter(|d| d.kind == DiskKind::Disk) {
                if let Some((_, _, path)) =
                    made.iter().find(|(p, v, _)| *p == d.pool && *v == d.volume)
                {
                    let path = path.to_string_lossy().into_owned();
                    if d.path != path {
                        tracing::warn!(
                            "clone {}: {} is at {path}, not {}",
                            r.name,
                            d.volume,
                            d.path
                        );
                        d.path = path;
                        moved = true;
                    }
                }
            }
            if moved {
                if let Err(e) = self.hv.define(&self.xml(r)) {
                    self.undo_clones(&defined, &made_pairs);
                    return Err(VmError::DefineClone {
                        vm: r.name.clone(),
                        source: e,
                    });
                }
            }
        }
        let made = made_pairs;
        {
            let mut inner = self.lock();
            let mut next = inner.records.clone();
            for r in &records {
                next.insert(r.name.clone(), r.clone());
            }
            if let Err(e) = self.store.save(&next) {
                drop(inner);
                self.undo_clones(&defined, &made);
                return Err(e.into());
            }
            inner.records = next;
            for r in &records {
                inner.states.insert(r.name.clone(), RunState::ShutOff);
            }
        }
        let define_took = defines_took + t_define.elapsed();
        tracing::info!(
            "cloned {source} as {} VM(s): disk volumes {:.2} s, libvirt definitions (meanwhile) {:.2} s, then records {:.2} s",
            records.len(),
            volumes_took.as_secs_f64(),
            defines_took.as_secs_f64(),
            t_define.elapsed().as_secs_f64()
        );
        progress.progress(100, &format!("created {} VM(s)", records.len()));
        Ok(ClonedVms {
            vms: records
                .iter()
                .map(|r| self.get(&r.name))
                .collect::<Result<_, _>>()?,
            volumes_took,
            define_took,
        })
    }

    /// A batch clone's volumes, one storage batch per pool: `(pool, volume, device path)`
    /// of each made. On a failure the ones made in earlier pools are removed again (storage
    /// removes those of the failed batch itself).
    fn clone_volumes(
        &self,
        source: &str,
        by_pool: &BTreeMap<String, Vec<(String, String)>>,
        vms: usize,
    ) -> Result<Vec<(String, String, PathBuf)>, VmError> {
        let mut made = Vec::new();
        for (pool, pairs) in by_pool {
            match self.volumes.clone_many(pool, pairs) {
                Ok(paths) => {
                    for ((_, vol), path) in pairs.iter().zip(paths) {
                        made.push((pool.clone(), vol.clone(), path));
                    }
                }
                Err(e) => {
                    let made: Vec<(String, String)> =
                        made.into_iter().map(|(p, v, _)| (p, v)).collect();
                    self.remove_volumes(&made);
                    return Err(vol_err(format!(
                        "clone the disks of {vms} VM(s) from {source} on pool {pool}"
                    ))(e));
                }
            }
        }
        Ok(made)
    }

    /// Define every clone in libvirt, in order, until one fails: the names defined, the
    /// failure, and how long it took.
    fn define_clones(
        &self,
        records: &[VmRecord],
        progress: &dyn Progress,
    ) -> (Vec<String>, Option<(String, HvError)>, Duration) {
        let t0 = Instant::now();
        let mut defined = Vec::new();
        for (k, r) in records.iter().enumerate() {
            progress.progress(
                // k < len: at most 89, so it fits.
                u8::try_from(5 + k * 85 / records.len()).unwrap_or(90),
                &format!("defining VM {} in libvirt", r.name),
            );
            if let Err(e) = self.hv.define(&self.xml(r)) {
                return (defined, Some((r.name.clone(), e)), t0.elapsed());
            }
            defined.push(r.name.clone());
        }
        (defined, None, t0.elapsed())
    }

    /// Undo a failed batch clone: undefine the domains defined, remove the volumes made.
    fn undo_clones(&self, defined: &[String], made: &[(String, String)]) {
        for name in defined {
            if let Err(e) = self.hv.undefine(name) {
                tracing::error!("cleanup: cannot undefine VM {name}: {e}");
            }
        }
        self.remove_volumes(made);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::chain;
    use crate::service::double::{fixture, spec, FakeHost};
    use cairn_core::alert::NoProgress;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    #[test]
    fn clones_are_cow_clones_with_new_macs() {
        let f = fixture(false);
        let g = f.vms.create(&spec("g"), &NoProgress).unwrap();
        let c = f.vms.clone_vm("g", "g1", None, None, &NoProgress).unwrap();
        assert!(f
            .vols
            .calls
            .lock()
            .unwrap()
            .contains(&"clone_many tank g-disk0>g1-disk0".to_string()));
        assert_eq!(c.record.disks[0].origin.as_deref(), Some("g-disk0"));
        assert_ne!(c.record.nics[0].mac, g.record.nics[0].mac);
        assert_eq!(c.record.nics[0].bridge, "br0");
        assert!(c.record.autostart);
        // Snapshot, then restore it as a new VM.
        f.vms.snapshot("g", "s1").unwrap();
        assert!(f.vols.names().contains(&"g-disk0-snap-s1".to_string()));
        let r = f
            .vms
            .clone_vm("g", "r1", Some("s1"), Some(false), &NoProgress)
            .unwrap();
        assert_eq!(r.record.disks[0].origin.as_deref(), Some("g-disk0-snap-s1"));
        assert!(!r.record.autostart);
        let e = f
            .vms
            .clone_vm("g", "r2", Some("nope"), None, &NoProgress)
            .unwrap_err();
        assert!(matches!(e, VmError::NoSnapshot { .. }), "{e:?}");
    }

    fn batch(names: &[&str]) -> Vec<NewClone> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| NewClone {
                name: n.to_string(),
                autostart: (i == 0).then_some(false),
            })
            .collect()
    }

    #[test]
    fn a_batch_clone_is_one_storage_batch_and_one_store_write() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vols.calls.lock().unwrap().clear();
        let made = f
            .vms
            .clone_vms("g", &batch(&["c1", "c2", "c3"]), None, &NoProgress)
            .unwrap();
        let made = made.vms;
        assert_eq!(made.len(), 3);
        assert_eq!(
            *f.vols.calls.lock().unwrap(),
            ["clone_many tank g-disk0>c1-disk0 g-disk0>c2-disk0 g-disk0>c3-disk0"]
        );
        // Autostart per clone, the source's by default.
        assert!(!made[0].record.autostart && made[1].record.autostart);
        let macs: BTreeSet<_> = made.iter().map(|v| v.record.nics[0].mac.clone()).collect();
        assert_eq!(macs.len(), 3);
        for c in ["c1", "c2", "c3"] {
            assert!(f.hv.domains.lock().unwrap().contains_key(c), "{c}");
        }
        // All three are in the store: a reopened service lists them.
        let again = Vms::open(
            f.vms.cfg.clone(),
            f.hv.clone(),
            f.vols.clone(),
            Arc::new(FakeHost::default()),
        )
        .unwrap();
        assert_eq!(again.list().len(), 4);
    }

    #[test]
    fn a_batch_with_a_bad_or_taken_name_changes_nothing() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vols.calls.lock().unwrap().clear();
        let field = |e: VmError| match e {
            VmError::Invalid(i) => i.field,
            e => panic!("{e:?}"),
        };
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "c1"]), None, &NoProgress)
            .unwrap_err();
        assert_eq!(field(e), "clones[1].name");
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "g"]), None, &NoProgress)
            .unwrap_err();
        assert_eq!(field(e), "clones[1].name");
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "Bad!"]), None, &NoProgress)
            .unwrap_err();
        assert_eq!(field(e), "clones[1].name");
        let e = f.vms.clone_vms("g", &[], None, &NoProgress).unwrap_err();
        assert_eq!(field(e), "clones");
        assert!(f.vols.calls.lock().unwrap().is_empty());
        assert_eq!(f.vms.list().len(), 1);
    }

    #[test]
    fn a_failed_batch_clone_names_the_clone_and_leaves_nothing() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        *f.hv.fail_define.lock().unwrap() = Some("c2".into());
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "c2", "c3"]), None, &NoProgress)
            .unwrap_err();
        assert!(chain(&e).contains("clone c2"), "{}", chain(&e));
        assert_eq!(f.vols.names(), ["g-disk0"]);
        assert_eq!(
            f.hv.domains.lock().unwrap().keys().collect::<Vec<_>>(),
            ["g"]
        );
        assert_eq!(f.vms.list().len(), 1);
        // A storage failure: the batch is refused as a whole and no VM is made.
        *f.hv.fail_define.lock().unwrap() = None;
        *f.vols.fail.lock().unwrap() = Some("clone_many".into());
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "c2"]), None, &NoProgress)
            .unwrap_err();
        assert!(matches!(e, VmError::Volume { .. }), "{e:?}");
        assert_eq!(f.vms.list().len(), 1);
        assert_eq!(f.vols.names(), ["g-disk0"]);
        // The clones were defined while storage worked, and undefined again.
        let calls = f.hv.calls.lock().unwrap().clone();
        assert!(
            calls.ends_with(&[
                "define c1".to_string(),
                "define c2".to_string(),
                "undefine c1".to_string(),
                "undefine c2".to_string()
            ]),
            "{calls:?}"
        );
        assert_eq!(
            f.hv.domains.lock().unwrap().keys().collect::<Vec<_>>(),
            ["g"]
        );
    }
}
