//! Runs waiting for a slot of the global cap, and the order in which they get one.
//!
//! A run whose ready tasks find the cap full asks for no timed wake-up: it joins this queue
//! (in the same critical section in which it counted the free slots, so a slot freed after its
//! count always finds it queued), and when Jobs finish, the controller wakes as many waiting
//! runs as there are free slots: runs under way first, then runs not started, oldest first. A woken run that finds the slots taken again
//! queues again; one that got its slots, finished or went away leaves the queue.

use std::collections::{HashSet, VecDeque};

/// A run's identity in the queue: (namespace, name).
pub type RunRef = (String, String);

/// Waiting runs: the runs of workflows of higher `priority` first; within a priority, runs
/// already under way before runs that have not started a task, each group oldest first.
/// Finishing started runs first keeps each run's time from start to end short (breadth-first,
/// 1,000 runs created at once would each start a task before any finishes).
#[derive(Debug, Default)]
pub struct SlotWaiters {
    /// By priority, highest first.
    levels: std::collections::BTreeMap<std::cmp::Reverse<i32>, Level>,
}

/// The waiters of one priority.
#[derive(Debug, Default)]
struct Level {
    started: Fifo,
    new: Fifo,
}

impl SlotWaiters {
    /// Queues `run` (`started`: whether any of its tasks ran; `priority`: its workflow's)
    /// unless it already waits in that group (it keeps its place).
    pub fn wait(&mut self, run: RunRef, started: bool, priority: i32) {
        let key = std::cmp::Reverse(priority);
        // A run's priority comes from the spec it executes, which does not change; should it
        // ever, the run waits at the new one only.
        for (_, level) in self.levels.iter_mut().filter(|(k, _)| **k != key) {
            level.started.leave(&run);
            level.new.leave(&run);
        }
        let level = self.levels.entry(key).or_default();
        if started {
            level.new.leave(&run);
            level.started.wait(run);
        } else {
            level.new.wait(run);
        }
    }

    /// Takes `run` out of the queue (it got its slots, or no longer needs any).
    pub fn leave(&mut self, run: &RunRef) {
        for level in self.levels.values_mut() {
            level.started.leave(run);
            level.new.leave(run);
        }
    }

    /// Number of runs waiting.
    pub fn len(&self) -> usize {
        self.levels
            .values()
            .map(|l| l.started.waiting.len() + l.new.waiting.len())
            .sum()
    }

    /// Whether no run waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes up to `free` waiting runs for which `exists` holds, by priority, started ones
    /// first; runs that no longer exist leave the queue without using a slot.
    pub fn take(&mut self, free: usize, exists: impl Fn(&RunRef) -> bool) -> Vec<RunRef> {
        let mut woken = Vec::new();
        for level in self.levels.values_mut() {
            for group in [&mut level.started, &mut level.new] {
                let rest = free - woken.len();
                woken.extend(group.take(rest, &exists));
            }
        }
        self.levels
            .retain(|_, l| !(l.started.waiting.is_empty() && l.new.waiting.is_empty()));
        woken
    }
}

/// One group, oldest first. Entries of runs that left stay in `order` until they reach its
/// front, where they are skipped (so leaving is O(1) and the queue never scans).
#[derive(Debug, Default)]
struct Fifo {
    order: VecDeque<RunRef>,
    waiting: HashSet<RunRef>,
}

impl Fifo {
    fn wait(&mut self, run: RunRef) {
        if self.waiting.insert(run.clone()) {
            self.order.push_back(run);
        }
        if self.order.len() > 2 * self.waiting.len() + 64 {
            self.compact();
        }
    }

    fn leave(&mut self, run: &RunRef) {
        self.waiting.remove(run);
    }

    /// Drops the entries of runs that left, and repeats, keeping each waiter's first place.
    fn compact(&mut self) {
        let mut seen = HashSet::new();
        let waiting = &self.waiting;
        self.order
            .retain(|r| waiting.contains(r) && seen.insert(r.clone()));
    }

    fn take(&mut self, free: usize, exists: &impl Fn(&RunRef) -> bool) -> Vec<RunRef> {
        let mut woken = Vec::new();
        while woken.len() < free {
            let Some(run) = self.order.pop_front() else {
                break;
            };
            if !self.waiting.remove(&run) {
                continue; // it left the queue earlier
            }
            if exists(&run) {
                woken.push(run);
            }
        }
        woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str) -> RunRef {
        ("dev".into(), name.into())
    }

    #[test]
    fn the_oldest_waiters_are_woken_one_per_free_slot() {
        let mut q = SlotWaiters::default();
        for name in ["a", "b", "c"] {
            q.wait(run(name), false, 0);
        }
        q.wait(run("a"), false, 0); // already waiting: keeps its place
        assert_eq!(q.len(), 3);
        assert_eq!(q.take(2, |_| true), [run("a"), run("b")]);
        assert_eq!(q.take(0, |_| true), Vec::<RunRef>::new());
        assert_eq!(q.take(5, |_| true), [run("c")]);
        assert!(q.is_empty());
    }

    #[test]
    fn runs_that_left_or_are_gone_use_no_slot() {
        let mut q = SlotWaiters::default();
        for name in ["a", "b", "c", "d"] {
            q.wait(run(name), false, 0);
        }
        q.leave(&run("a"));
        assert_eq!(q.take(2, |r| r.1 != "b"), [run("c"), run("d")]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_run_that_left_and_waits_again_is_woken_once() {
        let mut q = SlotWaiters::default();
        q.wait(run("a"), false, 0);
        q.wait(run("b"), false, 0);
        q.leave(&run("a"));
        q.wait(run("a"), false, 0);
        assert_eq!(q.take(3, |_| true), [run("a"), run("b")]);
        assert_eq!(q.take(3, |_| true), Vec::<RunRef>::new());
    }

    #[test]
    fn runs_under_way_go_before_runs_not_started() {
        let mut q = SlotWaiters::default();
        q.wait(run("new-1"), false, 0);
        q.wait(run("new-2"), false, 0);
        q.wait(run("going-1"), true, 0);
        q.wait(run("new-2"), true, 0); // it started meanwhile: moves to the started group
        q.wait(run("going-2"), true, 0);
        assert_eq!(q.len(), 4);
        assert_eq!(
            q.take(3, |_| true),
            [run("going-1"), run("new-2"), run("going-2")]
        );
        assert_eq!(q.take(3, |_| true), [run("new-1")]);
    }

    #[test]
    fn churn_does_not_grow_the_queue() {
        let mut q = SlotWaiters::default();
        q.wait(run("steady"), false, 0);
        for _ in 0..10_000 {
            q.wait(run("churn"), false, 0);
            q.leave(&run("churn"));
        }
        let entries = q.levels.values().map(|l| l.new.order.len()).sum::<usize>();
        assert!(entries < 200, "{entries} entries");
        assert_eq!(q.take(5, |_| true), [run("steady")]);
    }

    #[test]
    fn higher_priorities_go_first_then_runs_under_way_then_the_oldest() {
        let mut q = SlotWaiters::default();
        q.wait(run("low-going"), true, -5);
        q.wait(run("default-new"), false, 0);
        q.wait(run("urgent-new"), false, 10);
        q.wait(run("default-going"), true, 0);
        q.wait(run("urgent-new-2"), false, 10);
        assert_eq!(q.len(), 5);
        assert_eq!(
            q.take(4, |_| true),
            [
                run("urgent-new"),
                run("urgent-new-2"),
                run("default-going"),
                run("default-new")
            ]
        );
        assert_eq!(q.take(4, |_| true), [run("low-going")]);
        assert!(q.is_empty());
    }
}
