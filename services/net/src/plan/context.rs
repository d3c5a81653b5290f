//! What every step of the plan reads: the spec, the observed state, the spec's names as
//! kernel names, and the links the plan deletes (gone for every later step).

use crate::observed::{Observed, ObservedLink};
use crate::spec::NetworkSpec;
use std::collections::{BTreeMap, BTreeSet};

/// The inputs of one plan, shared by its steps.
pub(super) struct Context<'a> {
    pub(super) spec: &'a NetworkSpec,
    pub(super) observed: &'a Observed,
    /// Spec name → kernel name (see `links::kernel_names`).
    names: BTreeMap<String, String>,
    /// Kernel names of the links the plan deletes, and of the VLANs that go with them.
    pub(super) deleted: BTreeSet<String>,
}

impl<'a> Context<'a> {
    /// A plan's context before anything is deleted.
    pub(super) fn new(
        spec: &'a NetworkSpec,
        observed: &'a Observed,
        names: BTreeMap<String, String>,
    ) -> Context<'a> {
        Context {
            spec,
            observed,
            names,
            deleted: BTreeSet::new(),
        }
    }

    /// The kernel name of spec name `n` (itself when the spec does not map it).
    pub(super) fn k(&self, n: &str) -> String {
        self.names.get(n).cloned().unwrap_or_else(|| n.to_string())
    }

    /// Link `name` as observed, unless the plan deletes it.
    pub(super) fn present(&self, name: &str) -> Option<&'a ObservedLink> {
        if self.deleted.contains(name) {
            return None;
        }
        self.observed.by_name(name)
    }
}
