//! History: which finished runs of a workflow go, so that its history limits hold.

use chrono::{DateTime, Utc};

use datajump_api::RunPhase;

/// A finished run, for history pruning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun {
    /// Run name.
    pub name: String,
    /// Final phase.
    pub phase: RunPhase,
    /// When it finished.
    pub completed: DateTime<Utc>,
}

/// Runs to delete so that at most `keep_succeeded` succeeded and `keep_failed` other finished
/// runs (failed, stopped or terminated: the runs that did not do all their work) remain (the
/// newest are kept).
pub fn prune_history(runs: &[FinishedRun], keep_succeeded: u32, keep_failed: u32) -> Vec<String> {
    let mut delete = Vec::new();
    for (succeeded, keep) in [(true, keep_succeeded), (false, keep_failed)] {
        let mut of_phase: Vec<&FinishedRun> = runs
            .iter()
            .filter(|r| r.phase.is_finished() && (r.phase == RunPhase::Succeeded) == succeeded)
            .collect();
        // Newest first; the name breaks ties so the answer does not depend on input order.
        of_phase.sort_by(|a, b| {
            b.completed
                .cmp(&a.completed)
                .then_with(|| b.name.cmp(&a.name))
        });
        delete.extend(
            of_phase
                .into_iter()
                .skip(keep as usize)
                .map(|r| r.name.clone()),
        );
    }
    delete
}
