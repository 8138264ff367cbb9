//! The single fields of a workflow and of its tasks: schedules and time zones, ranges, limits,
//! trigger rules and the `onExit` task's restrictions.

use super::{Limits, ValidationErrors};
use crate::flow::TriggerRule;
use crate::k8s_names::check_dns1123_label;
use crate::schedule::{Schedule, parse_timezone};
use crate::schedules::{MAX_SCHEDULES, written};
use crate::workflow::{ScheduleSpec, TaskSpec, WorkflowSpec};

/// The schedules, in either form: each one's cron expression and time zone (both, so one pass
/// names every problem), and for the list form: not beside `schedule` or `timezone`, neither
/// empty nor too long, no entry twice. Several entries may still fire at the same instant (`@daily`
/// and `0 0 * * *`): that is one tick, not a mistake.
pub(super) fn validate_schedule(spec: &WorkflowSpec, errors: &mut ValidationErrors) {
    match &spec.schedules {
        Some(list) => validate_schedule_list(spec, list, errors),
        // A workflow started by hand only may still name the zone of its runs' logical dates.
        None if spec.schedule.is_none() => {
            if let Err(e) = parse_timezone(spec.timezone.as_deref()) {
                errors.push("spec.timezone", e.to_string());
            }
        }
        None => {}
    }
    for entry in written(spec) {
        if let Err(e) = Schedule::parse(entry.schedule, None) {
            errors.push(entry.path("schedule"), e.to_string());
        }
        if let Err(e) = parse_timezone(entry.timezone) {
            errors.push(entry.path("timezone"), e.to_string());
        }
    }
}

/// What only the list form can get wrong.
fn validate_schedule_list(
    spec: &WorkflowSpec,
    list: &[ScheduleSpec],
    errors: &mut ValidationErrors,
) {
    if spec.schedule.is_some() {
        errors.push(
            "spec.schedules",
            "give either spec.schedule (one cron schedule) or spec.schedules (several), not both",
        );
    }
    if spec.timezone.is_some() {
        errors.push(
            "spec.timezone",
            "goes with spec.schedule; with spec.schedules, give each entry its own timezone",
        );
    }
    if list.is_empty() {
        errors.push(
            "spec.schedules",
            "at least one schedule is required (leave the field out for a workflow started by \
             hand only)",
        );
    }
    if list.len() > MAX_SCHEDULES {
        errors.push(
            "spec.schedules",
            format!(
                "{} schedules exceed the limit of {MAX_SCHEDULES}",
                list.len()
            ),
        );
    }
    // Unset is UTC, so `timezone: UTC` and no timezone are the same entry (as in the CRD's rule).
    let zone = |s: &ScheduleSpec| s.timezone.clone().unwrap_or_else(|| "UTC".into());
    for (i, entry) in list.iter().enumerate() {
        if let Some(first) = list[..i]
            .iter()
            .position(|e| e.schedule == entry.schedule && zone(e) == zone(entry))
        {
            errors.push(
                format!("spec.schedules[{i}]"),
                format!(
                    "{:?} in {} is spec.schedules[{first}] again; give each schedule once",
                    entry.schedule,
                    zone(entry)
                ),
            );
        }
    }
}

pub(super) fn validate_scalars(
    spec: &WorkflowSpec,
    limits: &Limits,
    errors: &mut ValidationErrors,
) {
    if let Some(d) = spec.starting_deadline_seconds.filter(|d| *d < 0) {
        errors.push(
            "spec.startingDeadlineSeconds",
            format!("{d} is negative; expected >= 0"),
        );
    }
    if let Some(d) = spec.active_deadline_seconds.filter(|d| *d < 1) {
        errors.push(
            "spec.activeDeadlineSeconds",
            format!("{d} must be at least 1"),
        );
    }
    if !(-100..=100).contains(&spec.priority) {
        errors.push(
            "spec.priority",
            format!("{} is out of range; expected -100 to 100", spec.priority),
        );
    }
    if spec.parallelism == Some(0) {
        errors.push(
            "spec.parallelism",
            "0 would never start a task; expected at least 1",
        );
    }
    if !(1..=100).contains(&spec.max_catch_up_runs) {
        errors.push(
            "spec.maxCatchUpRuns",
            format!("{} is out of range; expected 1-100", spec.max_catch_up_runs),
        );
    }
    for (field, value) in [
        (
            "spec.successfulRunsHistoryLimit",
            spec.successful_runs_history_limit,
        ),
        (
            "spec.failedRunsHistoryLimit",
            spec.failed_runs_history_limit,
        ),
    ] {
        if value > limits.max_history {
            errors.push(
                field,
                format!("{value} exceeds the limit of {}", limits.max_history),
            );
        }
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        validate_task_scalars(task, &format!("spec.tasks[{i}]"), limits, errors);
        if task.trigger_rule.needs_upstream() && task.depends_on.is_empty() {
            errors.push(
                format!("spec.tasks[{i}].triggerRule"),
                format!(
                    "{:?} decides on the tasks in dependsOn, and this task has none",
                    task.trigger_rule
                ),
            );
        }
    }
    if let Some(task) = &spec.on_exit {
        validate_on_exit(spec, task, limits, errors);
    }
}

/// The `onExit` task: a task like the others, outside the DAG.
fn validate_on_exit(
    spec: &WorkflowSpec,
    task: &TaskSpec,
    limits: &Limits,
    errors: &mut ValidationErrors,
) {
    validate_task_scalars(task, "spec.onExit", limits, errors);
    if let Err(msg) = check_dns1123_label(&task.name) {
        errors.push("spec.onExit.name", msg);
    } else if let Some(i) = spec.tasks.iter().position(|t| t.name == task.name) {
        errors.push(
            "spec.onExit.name",
            format!("{:?} is the name of spec.tasks[{i}]", task.name),
        );
    }
    if !task.depends_on.is_empty() {
        errors.push(
            "spec.onExit.dependsOn",
            "the onExit task runs after every task; it takes no dependsOn",
        );
    }
    if task.trigger_rule != TriggerRule::default() {
        errors.push(
            "spec.onExit.triggerRule",
            "the onExit task runs whatever the outcome; it takes no triggerRule",
        );
    }
}

/// The numbers of one task (`path` is `spec.tasks[i]` or `spec.onExit`).
fn validate_task_scalars(
    task: &TaskSpec,
    path: &str,
    limits: &Limits,
    errors: &mut ValidationErrors,
) {
    let path = |f: &str| format!("{path}.{f}");
    if let Some(Err(msg)) = task.pool.as_deref().map(check_dns1123_label) {
        errors.push(path("pool"), msg);
    }
    if task.image.trim().is_empty() {
        errors.push(path("image"), "must not be empty");
    }
    if task.retries > limits.max_retries {
        errors.push(
            path("retries"),
            format!(
                "{} exceeds the limit of {}",
                task.retries, limits.max_retries
            ),
        );
    }
    if !(1..=3600).contains(&task.retry_backoff_seconds) {
        errors.push(
            path("retryBackoffSeconds"),
            format!(
                "{} is out of range; expected 1-3600",
                task.retry_backoff_seconds
            ),
        );
    }
    if let Some(t) = task.timeout_seconds.filter(|t| *t < 1) {
        errors.push(path("timeoutSeconds"), format!("{t} must be at least 1"));
    }
    if let Some(t) = task.pending_timeout_seconds.filter(|t| *t < 1) {
        errors.push(
            path("pendingTimeoutSeconds"),
            format!("{t} must be at least 1"),
        );
    }
    if !(1..=10).contains(&task.retry_backoff_factor) {
        errors.push(
            path("retryBackoffFactor"),
            format!(
                "{} is out of range; expected 1-10",
                task.retry_backoff_factor
            ),
        );
    }
    if !(1..=86_400).contains(&task.retry_backoff_max_seconds) {
        errors.push(
            path("retryBackoffMaxSeconds"),
            format!(
                "{} is out of range; expected 1-86400",
                task.retry_backoff_max_seconds
            ),
        );
    }
}
