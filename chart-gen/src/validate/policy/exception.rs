//! Policy exceptions declared on a pod template:
//! `datajump.io/policy-exception: "<rule>[,<rule>]: <reason>"`.
//!
//! A reason is mandatory so every waiver is explained where it is declared; an exception that
//! cannot be parsed waives nothing and is reported itself.

use std::collections::BTreeSet;

use super::PolicyRule;

/// The pod-template annotation that declares exceptions.
pub const EXCEPTION_ANNOTATION: &str = "datajump.io/policy-exception";

/// The rules a pod template is excepted from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Exceptions {
    rules: BTreeSet<PolicyRule>,
}

impl Exceptions {
    pub(super) fn covers(&self, rule: PolicyRule) -> bool {
        self.rules.contains(&rule)
    }
}

/// Parses the annotation value. An `Err` says what is wrong; the caller reports it and applies
/// no exception at all.
pub(super) fn parse(value: &str) -> Result<Exceptions, String> {
    let Some((names, reason)) = value.split_once(':') else {
        return Err(format!(
            "policy exception {value:?} has no reason: write \"<rule>[,<rule>]: <why this pod cannot comply>\""
        ));
    };
    if reason.trim().is_empty() {
        return Err(format!(
            "policy exception {value:?} has an empty reason: say why this pod cannot comply"
        ));
    }
    let mut rules = BTreeSet::new();
    for name in names.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(format!("policy exception {value:?} names an empty rule"));
        }
        rules.insert(name.parse::<PolicyRule>()?);
    }
    Ok(Exceptions { rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_requires_a_reason() {
        let e = parse("run-as-non-root, host-path: reads host log files owned by root").unwrap();
        assert!(e.covers(PolicyRule::RunAsNonRoot));
        assert!(e.covers(PolicyRule::HostPath));
        assert!(!e.covers(PolicyRule::Privileged));
        assert!(parse("host-path").unwrap_err().contains("no reason"));
        assert!(parse("host-path:  ").unwrap_err().contains("empty reason"));
        assert!(
            parse("root-please: because")
                .unwrap_err()
                .contains("unknown policy rule")
        );
    }
}
