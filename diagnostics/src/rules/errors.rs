//! 3/0/11 Error Code: every non-zero instance becomes a finding with its OMA meaning.

use crate::Input;
use crate::errors::meaning;
use crate::finding::{Evidence, Finding, RuleId};

const ERROR_CODE: &str = "/3/0/11";

pub fn error_codes(input: &Input<'_>) -> Vec<Finding> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (instance, reading) in input.snapshot.instances(ERROR_CODE) {
        let Some(code) = reading.as_i64() else {
            continue;
        };
        // A code reported twice (two instances) is one problem.
        if seen.contains(&code) {
            continue;
        }
        seen.push(code);
        let Some(m) = meaning(code) else {
            continue;
        };
        let mut title = m.meaning.to_owned();
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        out.push(Finding {
            rule: RuleId::ErrorCode,
            severity: m.severity,
            title: format!("Error code {code}: {title}"),
            evidence: vec![
                Evidence::new(format!("{ERROR_CODE}/{instance}"), code.to_string())
                    .meaning(m.meaning),
            ],
            action: m.action.to_owned(),
            site_visit: m.site_visit,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{run, snap};
    use crate::{DeviceHistory, Severity, Thresholds};

    fn check(values: &[(&str, i64)]) -> Vec<Finding> {
        run(
            error_codes,
            &snap(values),
            &DeviceHistory::default(),
            &Thresholds::default(),
        )
    }

    #[test]
    fn no_error_is_no_finding() {
        assert!(check(&[("/3/0/11/0", 0)]).is_empty());
        assert!(check(&[]).is_empty());
    }

    #[test]
    fn each_code_decoded() {
        let f = check(&[("/3/0/11/0", 5), ("/3/0/11/1", 8), ("/3/0/11/2", 5)]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].title, "Error code 5: Out of memory");
        assert_eq!(f[0].evidence[0].path, "/3/0/11/0");
        assert_eq!(f[1].severity, Severity::Critical);
        assert!(f[1].site_visit);
    }

    #[test]
    fn a_single_flattened_value_works() {
        let f = check(&[("/3/0/11", 7)]);
        assert_eq!(f[0].title, "Error code 7: IP connectivity failure");
    }
}
