//! What a task knows about its run: the run's logical time and data interval, the run and
//! workflow names, and the workflow's parameters, as environment variables of every task
//! container. Tasks use them in `command`, `args` and `env` values with Kubernetes' own
//! `$(NAME)` expansion (the kubelet substitutes them; `$$` is a literal `$`), so there is no
//! second template language. The kubelet leaves a `$(…)` that names no variable as written, which
//! is what keeps shell command substitution (`sh -c 'echo $(date)'`) working; so the offline check
//! looks only at `$(DATAJUMP_…)`: each must be a run variable or a declared parameter's.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::phase::RunPhase;

/// The run's logical time: its tick, or the time given when it was created (RFC 3339, UTC).
pub const LOGICAL_TIME: &str = "DATAJUMP_LOGICAL_TIME";
/// The logical time's date in the workflow's time zone (`YYYY-MM-DD`), for date-partitioned data.
pub const LOGICAL_DATE: &str = "DATAJUMP_LOGICAL_DATE";
/// Start of the data interval the run processes (RFC 3339, UTC): the tick before its own.
pub const INTERVAL_START: &str = "DATAJUMP_INTERVAL_START";
/// End of the data interval (RFC 3339, UTC): the logical time.
pub const INTERVAL_END: &str = "DATAJUMP_INTERVAL_END";
/// The WorkflowRun's name.
pub const RUN_NAME: &str = "DATAJUMP_RUN_NAME";
/// The Workflow's name.
pub const WORKFLOW_NAME: &str = "DATAJUMP_WORKFLOW_NAME";
/// Prefix of a parameter's variable: parameter `day` is `DATAJUMP_PARAM_DAY`.
pub const PARAM_PREFIX: &str = "DATAJUMP_PARAM_";

/// What the run's tasks ended in, for its `onExit` task only: `Succeeded`, `Failed`, or
/// `Stopped` / `Terminated` when its `spec.shutdown` ended it.
pub const RUN_OUTCOME: &str = "DATAJUMP_RUN_OUTCOME";
/// The run's failed tasks, comma-separated (empty when none failed), for its `onExit` task only.
pub const FAILED_TASKS: &str = "DATAJUMP_FAILED_TASKS";
/// The variables only the `onExit` task has: it runs once the outcome is known.
pub const EXIT_ONLY: [&str; 2] = [RUN_OUTCOME, FAILED_TASKS];

/// The variables every task has, whatever the workflow.
pub const BUILTIN: [&str; 6] = [
    LOGICAL_TIME,
    LOGICAL_DATE,
    INTERVAL_START,
    INTERVAL_END,
    RUN_NAME,
    WORKFLOW_NAME,
];

/// The environment variable of parameter `name` (`day-of-month` → `DATAJUMP_PARAM_DAY_OF_MONTH`).
pub fn param_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    format!("{PARAM_PREFIX}{upper}")
}

/// Facts about one run, to give its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts<'a> {
    pub workflow: &'a str,
    pub run: &'a str,
    pub logical_time: DateTime<Utc>,
    /// The logical time's calendar date in the workflow's time zone.
    pub logical_date: chrono::NaiveDate,
    /// The previous tick of the schedule; the logical time itself for unscheduled workflows.
    pub interval_start: DateTime<Utc>,
    /// Each parameter's name and value (defaults with the run's overrides applied).
    pub parameters: &'a [(String, String)],
}

/// The variables a run's tasks get, in order: the built-in ones, then one per parameter. They
/// come first in a container's `env`, so a task's own variables can refer to them.
pub fn variables(facts: &RunFacts<'_>) -> Vec<(String, String)> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut vars = vec![
        (LOGICAL_TIME.to_string(), time(facts.logical_time)),
        (LOGICAL_DATE.to_string(), facts.logical_date.to_string()),
        (INTERVAL_START.to_string(), time(facts.interval_start)),
        (INTERVAL_END.to_string(), time(facts.logical_time)),
        (RUN_NAME.to_string(), facts.run.to_string()),
        (WORKFLOW_NAME.to_string(), facts.workflow.to_string()),
    ];
    vars.extend(
        facts
            .parameters
            .iter()
            .map(|(name, value)| (param_var(name), value.clone())),
    );
    vars
}

/// The variables of an `onExit` task beyond the run's: the outcome of the run's tasks (the
/// phase they lead the run to) and which of them failed.
pub fn exit_variables(outcome: RunPhase, failed_tasks: &[&str]) -> Vec<(String, String)> {
    vec![
        (RUN_OUTCOME.to_string(), format!("{outcome:?}")),
        (FAILED_TASKS.to_string(), failed_tasks.join(",")),
    ]
}

/// The `$(NAME)` references in `text`, as the kubelet reads them: `$$` is an escaped `$`, and an
/// unclosed `$(` or a `$` before anything else is literal text.
pub fn references(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'(') => match text[i + 2..].find(')') {
                Some(end) => {
                    out.push(&text[i + 2..i + 2 + end]);
                    i += end + 3;
                }
                None => break,
            },
            _ => i += 1,
        }
    }
    out
}

/// A `$(NAME)` that names no variable the task will have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownReference {
    /// The name written.
    pub name: String,
    /// The closest known variable, when one is close.
    pub suggestion: Option<String>,
}

/// The `$(DATAJUMP_…)` references in `text` that are not in `known`, each with a suggestion
/// when a known name is a small edit away (a typo). Other references are the task's own or shell
/// text, and are left to the kubelet.
pub fn unknown_references(text: &str, known: &[String]) -> Vec<UnknownReference> {
    references(text)
        .into_iter()
        .filter(|r| r.starts_with("DATAJUMP_") && !known.iter().any(|k| k == r))
        .map(|r| UnknownReference {
            name: r.to_string(),
            suggestion: known
                .iter()
                .map(|k| (strsim::levenshtein(r, k), k))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, k)| k.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_the_kubelets_rules() {
        assert_eq!(
            references("--day=$(DATAJUMP_LOGICAL_DATE)"),
            ["DATAJUMP_LOGICAL_DATE"]
        );
        assert_eq!(references("$(A)$(B) $$(C) $ $x $(unclosed"), ["A", "B"]);
        assert!(references("price: $$5").is_empty());
    }

    #[test]
    fn variables_carry_the_logical_time_interval_names_and_parameters() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let params = vec![("day-of-month".to_string(), "1".to_string())];
        let vars = variables(&RunFacts {
            workflow: "etl",
            run: "etl-202611011800",
            logical_time: t("2026-11-01T18:00:00Z"),
            logical_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            interval_start: t("2026-10-31T18:00:00Z"),
            parameters: &params,
        });
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get(LOGICAL_TIME), Some("2026-11-01T18:00:00Z"));
        assert_eq!(get(LOGICAL_DATE), Some("2026-11-02"));
        assert_eq!(get(INTERVAL_START), Some("2026-10-31T18:00:00Z"));
        assert_eq!(get(INTERVAL_END), Some("2026-11-01T18:00:00Z"));
        assert_eq!(get(RUN_NAME), Some("etl-202611011800"));
        assert_eq!(get("DATAJUMP_PARAM_DAY_OF_MONTH"), Some("1"));
        assert_eq!(vars.len(), BUILTIN.len() + 1);
    }

    #[test]
    fn unknown_references_are_named_with_a_suggestion() {
        let known: Vec<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
        let unknown = unknown_references(
            "$(DATAJUMP_LOGICAL_DAT) $(HOME) $(id -u) $(DATAJUMP_RUN_NAME) $(DATAJUMP_X)",
            &known,
        );
        assert_eq!(
            unknown,
            [
                UnknownReference {
                    name: "DATAJUMP_LOGICAL_DAT".into(),
                    suggestion: Some(LOGICAL_DATE.into())
                },
                // $(HOME) and $(id -u) are the task's or the shell's: left to the kubelet.
                UnknownReference {
                    name: "DATAJUMP_X".into(),
                    suggestion: None
                },
            ]
        );
    }
}
