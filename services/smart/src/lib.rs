//! cairn-smart: the smartctl JSON model, health rules, per-disk history and the self-test schedule.
