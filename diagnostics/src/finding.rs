//! What a diagnosis says: findings with evidence and an action, and the overall verdict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How much a finding matters, in increasing order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing to do.
    Info,
    /// Watch it; no action yet.
    Minor,
    /// Needs action soon.
    Major,
    /// The meter is failing or about to.
    Critical,
}

/// Which rule produced a finding (stable identifiers: stored, counted in sweeps, compared with the
/// simulator's ground truth).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    WeakSignal,
    PoorLinkQuality,
    LowBattery,
    FrequentReboots,
    ErrorCode,
    LowMemory,
    MemoryLeak,
    FirmwareUpdate,
    TrafficPattern,
    Location,
    MissedCheckIn,
}

impl RuleId {
    pub const ALL: [RuleId; 11] = [
        RuleId::WeakSignal,
        RuleId::PoorLinkQuality,
        RuleId::LowBattery,
        RuleId::FrequentReboots,
        RuleId::ErrorCode,
        RuleId::LowMemory,
        RuleId::MemoryLeak,
        RuleId::FirmwareUpdate,
        RuleId::TrafficPattern,
        RuleId::Location,
        RuleId::MissedCheckIn,
    ];

    /// The identifier as stored and shown in APIs (`weak_signal`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::WeakSignal => "weak_signal",
            RuleId::PoorLinkQuality => "poor_link_quality",
            RuleId::LowBattery => "low_battery",
            RuleId::FrequentReboots => "frequent_reboots",
            RuleId::ErrorCode => "error_code",
            RuleId::LowMemory => "low_memory",
            RuleId::MemoryLeak => "memory_leak",
            RuleId::FirmwareUpdate => "firmware_update",
            RuleId::TrafficPattern => "traffic_pattern",
            RuleId::Location => "location",
            RuleId::MissedCheckIn => "missed_check_in",
        }
    }
}

/// One value a finding rests on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The resource path (`/4/0/2`), or `registrations` for evidence from the registration history.
    pub path: String,
    /// The value as shown to people, with its unit (`-113 dBm`).
    pub value: String,
    /// What the value means, when the number alone does not say it (`low battery (4)`).
    pub meaning: Option<String>,
}

impl Evidence {
    pub fn new(path: impl Into<String>, value: impl Into<String>) -> Evidence {
        Evidence {
            path: path.into(),
            value: value.into(),
            meaning: None,
        }
    }

    pub fn meaning(mut self, meaning: impl Into<String>) -> Evidence {
        self.meaning = Some(meaning.into());
        self
    }
}

/// One thing found wrong (or worth knowing) about a device.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    /// One line, plain language ("Weak radio signal").
    pub title: String,
    pub evidence: Vec<Evidence>,
    /// What to do, in plain language.
    pub action: String,
    /// Whether someone has to go to the meter.
    pub site_visit: bool,
}

/// The overall answer of a diagnosis, from best to worst.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No findings above Info.
    Healthy,
    /// Only minor findings: keep an eye on it.
    Monitor,
    /// Something needs doing, remotely (e.g. roll back firmware).
    RemoteAction,
    /// A truck must roll.
    SiteVisit,
}

/// The result of one diagnosis run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Unix seconds at which the rules ran.
    pub at: i64,
    pub verdict: Verdict,
    /// One sentence for the top of the page.
    pub summary: String,
    /// Worst first (then in rule order).
    pub findings: Vec<Finding>,
    /// Paths the device did not answer, with why; the diagnosis used what it had.
    pub unanswered: BTreeMap<String, String>,
}

impl Diagnosis {
    /// Orders the findings worst first and derives the verdict and summary.
    pub fn from_findings(
        at: i64,
        mut findings: Vec<Finding>,
        unanswered: BTreeMap<String, String>,
    ) -> Diagnosis {
        // Stable sort: equal severities keep rule order.
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let verdict = if findings.iter().any(|f| f.site_visit) {
            Verdict::SiteVisit
        } else if findings.iter().any(|f| f.severity >= Severity::Major) {
            Verdict::RemoteAction
        } else if findings.iter().any(|f| f.severity >= Severity::Minor) {
            Verdict::Monitor
        } else {
            Verdict::Healthy
        };
        let summary = summarise(verdict, &findings, unanswered.len());
        Diagnosis {
            at,
            verdict,
            summary,
            findings,
            unanswered,
        }
    }

    /// The rules that fired (each once), for counting and comparing with ground truth.
    pub fn rules(&self) -> Vec<RuleId> {
        let mut rules: Vec<RuleId> = self.findings.iter().map(|f| f.rule).collect();
        rules.sort();
        rules.dedup();
        rules
    }
}

fn summarise(verdict: Verdict, findings: &[Finding], unanswered: usize) -> String {
    let worst: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity >= Severity::Minor)
        .map(|f| f.title.as_str())
        .take(3)
        .collect();
    let mut text = match verdict {
        Verdict::Healthy => "No problems found.".to_owned(),
        Verdict::Monitor => format!("Keep an eye on it: {}.", worst.join("; ")),
        Verdict::RemoteAction => format!("Fix remotely: {}.", worst.join("; ")),
        Verdict::SiteVisit => format!("Site visit needed: {}.", worst.join("; ")),
    };
    if unanswered > 0 {
        text.push_str(&format!(
            " {unanswered} of the requested objects did not answer."
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: RuleId, severity: Severity, site_visit: bool) -> Finding {
        Finding {
            rule,
            severity,
            title: rule.as_str().replace('_', " "),
            evidence: vec![],
            action: String::new(),
            site_visit,
        }
    }

    #[test]
    fn verdict_follows_the_worst_finding() {
        let d = Diagnosis::from_findings(0, vec![], BTreeMap::new());
        assert_eq!(d.verdict, Verdict::Healthy);
        assert_eq!(d.summary, "No problems found.");

        let d = Diagnosis::from_findings(
            0,
            vec![finding(RuleId::Location, Severity::Info, false)],
            BTreeMap::new(),
        );
        assert_eq!(d.verdict, Verdict::Healthy);

        let d = Diagnosis::from_findings(
            0,
            vec![
                finding(RuleId::WeakSignal, Severity::Minor, false),
                finding(RuleId::FrequentReboots, Severity::Major, false),
            ],
            BTreeMap::new(),
        );
        assert_eq!(d.verdict, Verdict::RemoteAction);
        assert_eq!(d.findings[0].rule, RuleId::FrequentReboots, "worst first");
        assert_eq!(d.summary, "Fix remotely: frequent reboots; weak signal.");

        let mut unanswered = BTreeMap::new();
        unanswered.insert("/6/0".to_owned(), "not found (4.04)".to_owned());
        let d = Diagnosis::from_findings(
            0,
            vec![finding(RuleId::LowBattery, Severity::Minor, true)],
            unanswered,
        );
        assert_eq!(d.verdict, Verdict::SiteVisit);
        assert!(
            d.summary
                .ends_with("1 of the requested objects did not answer.")
        );
    }

    #[test]
    fn rule_ids_serialise_as_their_names() {
        for rule in RuleId::ALL {
            let json = serde_json::to_string(&rule).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", rule.as_str()));
        }
    }
}
