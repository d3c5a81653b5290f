//! "Who is current" after a split brain: etcd's record decides, and nothing a guest was told
//! is written is ever discarded without the admin (decision 0027).

use super::record::ResourceRecord;

/// What one side did while the two were apart (from DRBD's split-brain report and bitmap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apart {
    pub node: String,
    /// KiB this side changed while apart (0: no writes).
    pub changed_kib: u64,
}

/// One of the two ways out of an undecidable case, for the alert and the page action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Keep this node's data ...
    pub keep: String,
    /// ... and lose this node's writes while apart ...
    pub lose: String,
    /// ... this many KiB of them.
    pub lost_kib: u64,
}

impl Choice {
    /// The page action's text.
    pub fn describe(&self) -> String {
        format!(
            "keep {}'s data: the {} KiB {} wrote while apart are lost",
            self.keep, self.lost_kib, self.lose
        )
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Neither side wrote while apart: reconnect, nothing to resync.
    Reconnect,
    /// `winner` is the sync source; `loser` reconnects with `--discard-my-data`.
    /// `discarded_kib` of the loser's writes go; `acknowledged` says whether a guest was ever
    /// told they were written (false for every automatic resolution).
    Resync {
        winner: String,
        loser: String,
        discarded_kib: u64,
        acknowledged: bool,
        /// Set when the winner is not the recorded primary: the record moves to it.
        warning: Option<String>,
    },
    /// Both sides stay StandAlone; an alert offers both choices.
    Stop {
        reason: String,
        choices: [Choice; 2],
    },
}

fn stop(reason: String, a: &Apart, b: &Apart) -> Resolution {
    Resolution::Stop {
        reason,
        choices: [
            Choice {
                keep: a.node.clone(),
                lose: b.node.clone(),
                lost_kib: b.changed_kib,
            },
            Choice {
                keep: b.node.clone(),
                lose: a.node.clone(),
                lost_kib: a.changed_kib,
            },
        ],
    }
}

/// Decide between the two sides `a` and `b` of `rec` after a split brain.
pub fn decide(rec: &ResourceRecord, a: &Apart, b: &Apart) -> Resolution {
    let ours = |n: &str| rec.side(n).is_some();
    if a.node == b.node || !ours(&a.node) || !ours(&b.node) {
        return stop(
            format!(
                "the split brain's sides {} and {} are not the two sides of {} in etcd's record",
                a.node, b.node, rec.name
            ),
            a,
            b,
        );
    }
    if !ours(&rec.primary) {
        return stop(
            format!(
                "etcd's record of {} names {} as current, which holds neither side",
                rec.name, rec.primary
            ),
            a,
            b,
        );
    }
    let sanctioned = |n: &str| {
        rec.primary == n
            && rec
                .lone_writer
                .as_ref()
                .is_some_and(|w| w.node == n && w.generation == rec.generation)
    };
    match (a.changed_kib > 0, b.changed_kib > 0) {
        (false, false) => Resolution::Reconnect,
        (true, false) | (false, true) => {
            let (w, l) = if a.changed_kib > 0 { (a, b) } else { (b, a) };
            let warning = (rec.primary != w.node).then(|| {
                format!(
                    "{} wrote {} KiB while apart though etcd's record names {} as current \
                     (generation {}); {} had no writes, so nothing is lost and {} becomes current",
                    w.node, w.changed_kib, rec.primary, rec.generation, l.node, w.node
                )
            });
            Resolution::Resync {
                winner: w.node.clone(),
                loser: l.node.clone(),
                discarded_kib: 0,
                acknowledged: false,
                warning,
            }
        }
        (true, true) => {
            let (sa, sb) = (sanctioned(&a.node), sanctioned(&b.node));
            if sa != sb {
                let (w, l) = if sa { (a, b) } else { (b, a) };
                Resolution::Resync {
                    winner: w.node.clone(),
                    loser: l.node.clone(),
                    discarded_kib: l.changed_kib,
                    acknowledged: false,
                    warning: None,
                }
            } else {
                stop(
                    format!(
                        "both {} ({} KiB) and {} ({} KiB) wrote while apart and etcd's record \
                         (current: {}, generation {}) does not show that only one of them was \
                         let write alone",
                        a.node, a.changed_kib, b.node, b.changed_kib, rec.primary, rec.generation
                    ),
                    a,
                    b,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::record::tests::sample;
    use crate::drbd::record::LoneWriter;

    fn apart(node: &str, kib: u64) -> Apart {
        Apart {
            node: node.into(),
            changed_kib: kib,
        }
    }

    fn lone(rec: &mut ResourceRecord, node: &str, generation: u64) {
        rec.lone_writer = Some(LoneWriter {
            node: node.into(),
            generation,
            since: 1,
        });
    }

    #[test]
    fn nobody_wrote_reconnects_in_either_order() {
        let r = sample();
        assert_eq!(
            decide(&r, &apart("node1", 0), &apart("node2", 0)),
            Resolution::Reconnect
        );
        assert_eq!(
            decide(&r, &apart("node2", 0), &apart("node1", 0)),
            Resolution::Reconnect
        );
    }

    #[test]
    fn only_the_recorded_primary_wrote_it_wins_losing_nothing() {
        let r = sample();
        for (x, y) in [
            (apart("node1", 500), apart("node2", 0)),
            (apart("node2", 0), apart("node1", 500)),
        ] {
            assert_eq!(
                decide(&r, &x, &y),
                Resolution::Resync {
                    winner: "node1".into(),
                    loser: "node2".into(),
                    discarded_kib: 0,
                    acknowledged: false,
                    warning: None
                }
            );
        }
    }

    #[test]
    fn only_the_other_side_wrote_it_wins_with_a_warning() {
        let r = sample();
        match decide(&r, &apart("node1", 0), &apart("node2", 64)) {
            Resolution::Resync {
                winner,
                loser,
                discarded_kib: 0,
                warning: Some(w),
                ..
            } => {
                assert_eq!((winner.as_str(), loser.as_str()), ("node2", "node1"));
                assert!(
                    w.contains("node2 wrote 64 KiB") && w.contains("names node1"),
                    "{w}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn both_wrote_the_sanctioned_lone_writer_wins_the_frozen_side_loses_unacknowledged_writes() {
        let mut r = sample();
        lone(&mut r, "node1", 1);
        for (x, y) in [
            (apart("node1", 900), apart("node2", 12)),
            (apart("node2", 12), apart("node1", 900)),
        ] {
            assert_eq!(
                decide(&r, &x, &y),
                Resolution::Resync {
                    winner: "node1".into(),
                    loser: "node2".into(),
                    discarded_kib: 12,
                    acknowledged: false,
                    warning: None
                }
            );
        }
        // After a failover: node2 became primary at generation 2 and wrote alone; node1 (the
        // old primary, frozen) had local unacknowledged blocks.
        let mut f = sample();
        f.primary = "node2".into();
        f.generation = 2;
        lone(&mut f, "node2", 2);
        match decide(&f, &apart("node1", 40), &apart("node2", 4000)) {
            Resolution::Resync {
                winner,
                discarded_kib: 40,
                ..
            } => assert_eq!(winner, "node2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn both_wrote_without_a_sanctioned_lone_writer_stops_naming_both_choices() {
        let cases: Vec<(&str, ResourceRecord)> = vec![
            ("no lone writer", sample()),
            ("lone writer of an older generation", {
                let mut r = sample();
                r.generation = 3;
                lone(&mut r, "node1", 2);
                r
            }),
            ("lone writer is not the recorded primary", {
                let mut r = sample();
                lone(&mut r, "node2", 1);
                r
            }),
        ];
        for (what, r) in cases {
            match decide(&r, &apart("node1", 100), &apart("node2", 30)) {
                Resolution::Stop { reason, choices } => {
                    assert!(
                        reason.contains("both node1 (100 KiB) and node2 (30 KiB)"),
                        "{what}: {reason}"
                    );
                    assert_eq!(
                        choices[0].describe(),
                        "keep node1's data: the 30 KiB node2 wrote while apart are lost"
                    );
                    assert_eq!(
                        choices[1].describe(),
                        "keep node2's data: the 100 KiB node1 wrote while apart are lost"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn sides_or_record_that_do_not_match_stop() {
        let r = sample();
        assert!(matches!(
            decide(&r, &apart("node1", 0), &apart("node3", 0)),
            Resolution::Stop { .. }
        ));
        assert!(matches!(
            decide(&r, &apart("node1", 0), &apart("node1", 0)),
            Resolution::Stop { .. }
        ));
        let mut third = sample();
        third.primary = "node3".into();
        match decide(&third, &apart("node1", 5), &apart("node2", 0)) {
            Resolution::Stop { reason, .. } => assert!(reason.contains("names node3"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
