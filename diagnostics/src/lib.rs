//! Remote diagnostics of a meter, as pure functions: a [`Snapshot`] of what the device reported in
//! objects 3 (Device), 4 (Connectivity Monitoring), 5 (Firmware Update), 6 (Location) and 7
//! (Connectivity Statistics), plus the device's [`DeviceHistory`] (earlier snapshots, registration
//! events), go through small rules ([`rules`]) whose thresholds come from the configuration
//! ([`Thresholds`]). Each rule gives zero or more [`Finding`]s with severity, evidence (paths and
//! values), a recommended action in plain language and whether a site visit is needed; [`diagnose`]
//! combines them into a [`Diagnosis`] with an overall [`Verdict`].
//!
//! Nothing here reads the clock, a socket or a database: the server reads the device, stores the
//! snapshot and the history, and calls [`diagnose`] with `now`. That keeps every rule unit-testable
//! and lets the console (wasm32) reuse the types.

pub mod compare;
pub mod config;
pub mod errors;
pub mod finding;
pub mod history;
pub mod rules;
pub mod snapshot;
mod stats;

pub use compare::{Change, changes};
pub use config::Thresholds;
pub use finding::{Diagnosis, Evidence, Finding, RuleId, Severity, Verdict};
pub use history::{DeviceHistory, RegistrationEvent, RegistrationKind};
pub use snapshot::{Reading, Snapshot};

/// Everything a diagnosis looks at. `history.snapshots` are the device's earlier snapshots (any
/// order; rules sort by time), not including `snapshot`.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The snapshot just taken.
    pub snapshot: &'a Snapshot,
    /// Earlier snapshots and registration events of the same device.
    pub history: &'a DeviceHistory,
    /// Unix seconds at which the diagnosis runs.
    pub now: i64,
    pub thresholds: &'a Thresholds,
}

/// Runs every rule and combines the findings into a diagnosis. Deterministic: the same input gives
/// the same findings in the same order (rule order, then the rule's own order).
pub fn diagnose(input: Input<'_>) -> Diagnosis {
    let mut findings = Vec::new();
    for rule in rules::ALL {
        findings.extend((rule.run)(&input));
    }
    Diagnosis::from_findings(input.now, findings, input.snapshot.failed.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// A meter as the issue describes a troubled one: weak signal, a dying battery, error code 1.
    #[test]
    fn a_troubled_meter_needs_a_site_visit() {
        let mut s = Snapshot::new(NOW);
        for (p, v) in [
            ("/4/0/0", 6),
            ("/4/0/2", -114),
            ("/4/0/3", -18),
            ("/3/0/9", 7),
            ("/3/0/20", 4),
            ("/3/0/11/0", 1),
            ("/3/0/10", 600),
            ("/3/0/21", 1024),
            ("/5/0/3", 0),
            ("/5/0/5", 1),
        ] {
            s.values.insert(p.into(), Reading::Int(v));
        }
        s.fail("/6/0", "not found (4.04)");
        let d = diagnose(Input {
            snapshot: &s,
            history: &DeviceHistory::default(),
            now: NOW,
            thresholds: &Thresholds::default(),
        });
        assert_eq!(d.verdict, Verdict::SiteVisit);
        assert_eq!(
            d.rules(),
            [
                RuleId::WeakSignal,
                RuleId::PoorLinkQuality,
                RuleId::LowBattery,
                RuleId::ErrorCode,
                RuleId::Location
            ]
        );
        assert_eq!(d.findings[0].severity, Severity::Critical, "worst first");
        assert!(
            d.summary.starts_with("Site visit needed: Battery critical"),
            "{}",
            d.summary
        );
        assert_eq!(d.unanswered.len(), 1);
    }

    #[test]
    fn a_healthy_meter_is_healthy() {
        let mut s = Snapshot::new(NOW);
        for (p, v) in [
            ("/4/0/2", -85),
            ("/3/0/9", 90),
            ("/3/0/11/0", 0),
            ("/3/0/10", 800),
            ("/3/0/21", 1024),
        ] {
            s.values.insert(p.into(), Reading::Int(v));
        }
        s.values.insert("/6/0/0".into(), Reading::Float(52.5));
        s.values.insert("/6/0/1".into(), Reading::Float(13.4));
        let d = diagnose(Input {
            snapshot: &s,
            history: &DeviceHistory::default(),
            now: NOW,
            thresholds: &Thresholds::default(),
        });
        assert_eq!(d.verdict, Verdict::Healthy, "{d:?}");
        assert!(d.findings.is_empty());
    }

    fn reading() -> impl Strategy<Value = Reading> {
        prop_oneof![
            any::<i64>().prop_map(Reading::Int),
            any::<f64>().prop_map(Reading::Float),
            any::<bool>().prop_map(Reading::Bool),
            any::<i64>().prop_map(Reading::Time),
            ".{0,8}".prop_map(Reading::Text),
        ]
    }

    fn snapshot() -> impl Strategy<Value = Snapshot> {
        let paths = prop::sample::select(vec![
            "/3/0/6/0",
            "/3/0/6/1",
            "/3/0/7/0",
            "/3/0/7/1",
            "/3/0/9",
            "/3/0/10",
            "/3/0/11",
            "/3/0/11/0",
            "/3/0/11/3",
            "/3/0/20",
            "/3/0/21",
            "/4/0/0",
            "/4/0/2",
            "/4/0/3",
            "/5/0/3",
            "/5/0/5",
            "/6/0/0",
            "/6/0/1",
            "/7/0/2",
            "/7/0/3",
        ]);
        (
            any::<i64>(),
            prop::collection::btree_map(paths.prop_map(str::to_owned), reading(), 0..20),
        )
            .prop_map(|(taken_at, values)| Snapshot {
                taken_at,
                values,
                failed: Default::default(),
            })
    }

    fn event() -> impl Strategy<Value = RegistrationEvent> {
        let kinds = prop::sample::select(vec![
            RegistrationKind::Registered,
            RegistrationKind::Reregistered,
            RegistrationKind::RebootExecuted,
            RegistrationKind::Updated,
            RegistrationKind::Deregistered,
            RegistrationKind::Expired,
        ]);
        (any::<i64>(), kinds).prop_map(|(at, kind)| RegistrationEvent { at, kind })
    }

    proptest! {
        /// Whatever a device (or a corrupted history) reports, diagnosing never panics and the
        /// verdict agrees with the findings.
        #[test]
        fn diagnose_never_panics(
            s in snapshot(),
            earlier in prop::collection::vec(snapshot(), 0..5),
            samples in prop::collection::vec(snapshot(), 0..5),
            registrations in prop::collection::vec(event(), 0..12),
            last_seen in any::<Option<i64>>(),
            lifetime in any::<Option<i64>>(),
            now in any::<i64>(),
        ) {
            let history = DeviceHistory {
                snapshots: earlier,
                samples,
                registrations,
                lifetime_secs: lifetime,
                last_seen,
                queue_mode: false,
            };
            let d = diagnose(Input { snapshot: &s, history: &history, now, thresholds: &Thresholds::default() });
            let site = d.findings.iter().any(|f| f.site_visit);
            prop_assert_eq!(d.verdict == Verdict::SiteVisit, site);
        }
    }
}
