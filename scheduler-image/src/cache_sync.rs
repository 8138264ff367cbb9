//! Whether the scheduler's caches (Workflows, WorkflowRuns, Jobs) hold their first complete
//! list, so that no decision rests on a partial view.
//!
//! The scheduler tracks this itself, from the watch streams' `InitDone` events, instead of
//! calling kube's `Store::wait_until_ready`: that future wakes only the last of several tasks
//! waiting on it at once (it keeps one waker), and the controller's own runner is already
//! waiting on its store. With a second waiter, the reconciles that started before the lists
//! completed (every run that existed when the scheduler restarted) waited forever, and runs
//! stalled after a restart or a leader handover. A `tokio::sync::watch` wakes every waiter.

use kube::runtime::watcher;
use tokio::sync::watch;

/// One of the caches a reconcile reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    Workflows,
    Runs,
    Jobs,
}

impl Cache {
    const ALL: [Cache; 3] = [Cache::Workflows, Cache::Runs, Cache::Jobs];

    fn bit(self) -> u8 {
        match self {
            Cache::Workflows => 1,
            Cache::Runs => 2,
            Cache::Jobs => 4,
        }
    }
}

const ALL_SYNCED: u8 = 1 | 2 | 4;

/// Which caches have completed their first list; any number of tasks can wait for all three.
#[derive(Debug)]
pub struct CacheSync {
    synced: watch::Sender<u8>,
}

impl Default for CacheSync {
    fn default() -> Self {
        Self {
            synced: watch::Sender::new(0),
        }
    }
}

impl CacheSync {
    /// Records that `cache` holds a complete list. Later relists change nothing: a cache that
    /// was complete once stays usable while it relists.
    pub fn mark(&self, cache: Cache) {
        self.synced.send_if_modified(|synced| {
            let before = *synced;
            *synced |= cache.bit();
            *synced != before
        });
    }

    /// Takes in a watch event of `cache`'s stream, after the cache has applied it.
    pub fn observe<K>(&self, cache: Cache, event: &watcher::Event<K>) {
        if matches!(event, watcher::Event::InitDone) {
            self.mark(cache);
        }
    }

    /// Whether every cache is complete.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow() == ALL_SYNCED
    }

    /// The caches still waiting for their first list.
    pub fn pending(&self) -> Vec<Cache> {
        let synced = *self.synced.borrow();
        Cache::ALL
            .into_iter()
            .filter(|c| synced & c.bit() == 0)
            .collect()
    }

    /// Waits until every cache is complete.
    pub async fn wait(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as `self`, so this cannot fail while anyone waits.
        let _ = rx.wait_for(|synced| *synced == ALL_SYNCED).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn every_concurrent_waiter_is_woken() {
        let sync = Arc::new(CacheSync::default());
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.wait().await })
            })
            .collect();
        // Let every waiter register before the caches complete.
        tokio::time::sleep(Duration::from_millis(50)).await;
        sync.observe(Cache::Workflows, &watcher::Event::<Job>::InitDone);
        sync.observe(Cache::Runs, &watcher::Event::<Job>::InitDone);
        assert_eq!(sync.pending(), [Cache::Jobs]);
        assert!(!sync.is_synced());
        sync.mark(Cache::Jobs);
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(2), waiter)
                .await
                .expect("a waiter was not woken")
                .expect("the waiter task");
        }
        assert!(sync.is_synced());
    }

    #[tokio::test]
    async fn only_the_end_of_a_list_marks_a_cache() {
        let sync = CacheSync::default();
        sync.observe(Cache::Runs, &watcher::Event::<Job>::Init);
        sync.observe(Cache::Runs, &watcher::Event::InitApply(Job::default()));
        sync.observe(Cache::Runs, &watcher::Event::Apply(Job::default()));
        assert_eq!(sync.pending(), Cache::ALL);
        sync.observe(Cache::Runs, &watcher::Event::<Job>::InitDone);
        assert_eq!(sync.pending(), [Cache::Workflows, Cache::Jobs]);
    }

    #[tokio::test]
    async fn a_waiter_after_the_sync_returns_at_once() {
        let sync = CacheSync::default();
        for cache in Cache::ALL {
            sync.mark(cache);
        }
        tokio::time::timeout(Duration::from_millis(100), sync.wait())
            .await
            .expect("already synced");
    }
}
