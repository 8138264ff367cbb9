//! Deterministic object names: a run is named after its workflow and scheduled tick, a Job after
//! its run, task and attempt. A restarted scheduler, or a second replica that briefly believes it
//! leads, computes the same name and gets AlreadyExists instead of creating a duplicate.
//!
//! Names stay within 63 characters (they also appear in label values and the Job controller's
//! pod labels); longer ones are shortened with a stable hash of the full name.

use chrono::{DateTime, Utc};

/// Longest name that is also a valid label value.
pub const MAX_NAME_LEN: usize = 63;

/// Name of the run created for the tick `scheduled` (UTC, minute precision).
pub fn scheduled_run_name(workflow: &str, scheduled: DateTime<Utc>) -> String {
    bounded(workflow, &scheduled.format("%Y%m%d%H%M").to_string())
}

/// Characters the API server appends to a `generateName`.
const GENERATED_SUFFIX_LEN: usize = 5;

/// `generateName` of a run started by hand (`kubectl datajump workflow run`) at `now`:
/// `<workflow>-manual-<YYYYMMDDHHMMSS>-`, to which the API server appends five random
/// characters, so runs started in the same second do not collide. Bounded like every other
/// name, so the full name of a long workflow's run still fits a label.
pub fn manual_run_prefix(workflow: &str, now: DateTime<Utc>) -> String {
    let stamp = now.format("manual-%Y%m%d%H%M%S").to_string();
    let name = bounded_to(workflow, &stamp, MAX_NAME_LEN - GENERATED_SUFFIX_LEN - 1);
    format!("{name}-")
}

/// `generateName` of a run retrying `run`: `<run>-retry-`, bounded so the full name fits a label.
pub fn retry_run_prefix(run: &str) -> String {
    let name = bounded_to(run, "retry", MAX_NAME_LEN - GENERATED_SUFFIX_LEN - 1);
    format!("{name}-")
}

/// Name of the backfill of `workflow` over the window `from..=to`: the same window gives the
/// same name, so a backfill run again is recognised as the same one.
pub fn backfill_name(workflow: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let window = format!(
        "backfill-{}-{}",
        from.format("%Y%m%d%H%M"),
        to.format("%Y%m%d%H%M")
    );
    bounded(workflow, &window)
}

/// Name of the Job executing `attempt` (1-based) of `task` in `run`.
pub fn job_name(run: &str, task: &str, attempt: u32) -> String {
    bounded(&format!("{run}-{task}"), &attempt.to_string())
}

/// `{base}-{suffix}`, or when too long `{base prefix}-{hash of base}-{suffix}`: a name that
/// fits a label value, stable for the same inputs (the plugin names its Jobs with it too).
pub fn bounded(base: &str, suffix: &str) -> String {
    bounded_to(base, suffix, MAX_NAME_LEN)
}

/// [`bounded`] within `max` characters.
fn bounded_to(base: &str, suffix: &str, max: usize) -> String {
    let full = format!("{base}-{suffix}");
    if full.len() <= max {
        return full;
    }
    let hash = format!("{:08x}", fnv1a(base.as_bytes()) as u32);
    let keep = max.saturating_sub(suffix.len() + hash.len() + 2);
    // Names are ASCII (DNS-1123), so byte slicing is safe; trim '-' so the result stays valid.
    let prefix = base[..keep.min(base.len())].trim_end_matches('-');
    format!("{prefix}-{hash}-{suffix}")
}

/// FNV-1a: tiny, stable across Rust versions and platforms (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn short_names_are_readable() {
        let t = Utc
            .with_ymd_and_hms(2026, 3, 29, 1, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(scheduled_run_name("etl", t), "etl-202603290100");
        assert_eq!(
            job_name("etl-202603290100", "load", 2),
            "etl-202603290100-load-2"
        );
    }

    #[test]
    fn long_names_are_bounded_distinct_and_stable() {
        let run = "a".repeat(60);
        let a = job_name(&run, "extract-customers-from-the-warehouse", 1);
        let b = job_name(&run, "extract-customers-from-the-warehouse-2", 1);
        assert!(
            a.len() <= MAX_NAME_LEN && b.len() <= MAX_NAME_LEN,
            "{a} {b}"
        );
        assert_ne!(a, b);
        assert_eq!(a, job_name(&run, "extract-customers-from-the-warehouse", 1));
        assert!(a.ends_with("-1"));
        assert!(crate::k8s_names::check_dns1123_label(&a).is_ok(), "{a}");
    }

    #[test]
    fn manual_run_names_fit_a_label_for_the_longest_workflow_names() {
        let t = Utc
            .with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
            .single()
            .expect("valid");
        assert_eq!(manual_run_prefix("etl", t), "etl-manual-20260304050607-");
        let long = "w".repeat(63);
        let prefix = manual_run_prefix(&long, t);
        // The API server appends five characters to the prefix.
        let name = format!("{prefix}abcde");
        assert!(name.len() <= MAX_NAME_LEN, "{name}");
        assert!(prefix.ends_with("-manual-20260304050607-"), "{prefix}");
        assert_ne!(prefix, manual_run_prefix(&"w".repeat(62), t));
        assert!(
            crate::k8s_names::check_dns1123_label(&name).is_ok(),
            "{name}"
        );
        // The Jobs of that run still get valid names too.
        assert!(job_name(&name, "extract", 1).len() <= MAX_NAME_LEN);
    }

    #[test]
    fn retry_and_backfill_names_fit_a_label() {
        assert_eq!(
            retry_run_prefix("etl-202611150200"),
            "etl-202611150200-retry-"
        );
        let prefix = retry_run_prefix(&"r".repeat(63));
        assert!(format!("{prefix}abcde").len() <= MAX_NAME_LEN, "{prefix}");
        let from = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .expect("valid");
        let to = Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 59, 59)
            .single()
            .expect("valid");
        assert_eq!(
            backfill_name("etl", from, to),
            "etl-backfill-202611010000-202611302359"
        );
        let long = backfill_name(&"w".repeat(40), from, to);
        assert!(long.len() <= MAX_NAME_LEN, "{long}");
        assert!(
            crate::k8s_names::check_dns1123_label(&long).is_ok(),
            "{long}"
        );
    }
}
