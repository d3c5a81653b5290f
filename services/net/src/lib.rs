//! cairn-net: the declarative network spec, validation, the rtnetlink planner and apply, safe apply.
