//! The leader Lease client: one election round at a time ([`LeaderLease::try_acquire_or_renew`],
//! deciding with the pure [`decide`]), the wait for leadership, and the renewal that stops a
//! leader before its Lease can expire for the followers.
//!
//! Why not the `kube-lease-manager` crate: its holder renews once per lease period, shortly
//! before expiry, and reports a lost lock only when it reads the Lease again, with no deadline
//! of its own. A leader cut off from the API server (the failover tests freeze it) would then
//! keep acting until, and past, the moment a follower takes over: two leaders. Here a leader
//! renews every [`retry_period`] and stops once renewal has failed for the [`renew_deadline`]
//! (two thirds of the duration), so it has stopped before any follower may start. Its
//! takeover also releases an expired Lease and sleeps a random second before claiming it,
//! which would change the failover times the tests and the chart's documentation rely on.

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cluster::is_status;
use crate::http::Health;
use crate::jobs::{from_k8s_time, to_k8s_time};
use crate::leader::{LeaseDecision, LeaseView, decide, renew_deadline, retry_period};

/// The leader Lease of this replica.
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration_seconds: u32,
}

fn micro_now() -> Option<MicroTime> {
    to_k8s_time(Utc::now()).map(|t| MicroTime(t.0))
}

impl LeaderLease {
    /// The Lease `name` in `namespace`, for candidate `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration_seconds: u32,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration_seconds,
        }
    }

    fn spec(&self, acquire: bool, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds as i32),
            acquire_time: if acquire { micro_now() } else { None },
            renew_time: micro_now(),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One election round: acquire, renew, or follow. Returns whether we hold the Lease.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let view = current.as_ref().map(|l| {
            let spec = l.spec.clone().unwrap_or_default();
            LeaseView {
                holder: spec.holder_identity,
                renewed: spec
                    .renew_time
                    .as_ref()
                    .and_then(|t| from_k8s_time(&Time(t.0))),
                duration_seconds: i64::from(
                    spec.lease_duration_seconds
                        .unwrap_or(self.duration_seconds as i32),
                ),
            }
        });
        let outcome = match (decide(view.as_ref(), &self.identity, Utc::now()), current) {
            (LeaseDecision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(true, 0)),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| true)
            }
            (LeaseDecision::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let mut spec = self.spec(false, old.lease_transitions.unwrap_or(0));
                spec.acquire_time = old.acquire_time;
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| true)
            }
            (LeaseDecision::TakeOver, Some(mut lease)) => {
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0)
                    + 1;
                lease.spec = Some(self.spec(true, transitions));
                tracing::info!(lease = %self.name, identity = %self.identity, "taking over the leader Lease");
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| true)
            }
            (LeaseDecision::Follow { holder, until }, _) => {
                tracing::debug!(%holder, %until, "following the leader");
                Ok(false)
            }
            (_, None) => Ok(false),
        };
        match outcome {
            // Another candidate wrote first (resourceVersion conflict or concurrent create).
            Err(e) if is_status(&e, |s| s.is_conflict() || s.is_already_exists()) => Ok(false),
            other => other,
        }
    }

    /// Gives the Lease up on shutdown so a follower takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                if let Err(e) = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    tracing::warn!(error = %e, "could not release the leader Lease");
                }
            }
        }
    }
}

/// Stands by until this replica holds the Lease (true) or `shutdown` fires (false). A follower
/// that reaches the API server is ready.
pub(super) async fn wait_for_leadership(
    lease: &LeaderLease,
    health: &Health,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let period = retry_period(lease.duration_seconds);
    loop {
        if *shutdown.borrow() {
            return false;
        }
        match lease.try_acquire_or_renew().await {
            Ok(true) => return true,
            Ok(false) => health.set_ready(true),
            Err(e) => tracing::warn!(error = %e, "leader election round failed"),
        }
        let mut rx = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = rx.wait_for(|s| *s) => return false,
        }
    }
}

/// Keeps renewing the Lease until `shutdown` fires. The receiver turns true once leadership is
/// lost: another replica holds the Lease, or renewal has failed for the renew deadline, which
/// ends before the Lease expires for the followers.
pub(super) fn keep_renewing(
    lease: Arc<LeaderLease>,
    shutdown: watch::Receiver<bool>,
) -> (JoinHandle<()>, watch::Receiver<bool>) {
    let (lost_tx, lost_rx) = watch::channel(false);
    let period = retry_period(lease.duration_seconds);
    let deadline = renew_deadline(lease.duration_seconds);
    let renewer = tokio::spawn(async move {
        // The election round that made us leader was a successful write.
        let mut last_ok = tokio::time::Instant::now();
        while !*shutdown.borrow() {
            tokio::time::sleep(period).await;
            let left = deadline.saturating_sub(last_ok.elapsed());
            match tokio::time::timeout(left, lease.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
                Ok(Ok(false)) => {
                    let _ = lost_tx.send(true);
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing the leader Lease failed"),
                Err(_) => tracing::warn!("renewing the leader Lease did not finish in time"),
            }
            if last_ok.elapsed() >= deadline {
                let _ = lost_tx.send(true);
                return;
            }
        }
    });
    (renewer, lost_rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::mock::{mock_client, next, ok, status};

    #[tokio::test]
    async fn lease_is_created_when_absent_and_followed_while_someone_else_holds_it() {
        let (client, mut handle) = mock_client();
        let lease = LeaderLease::new(
            client,
            "datajump-prod",
            "datajump-scheduler-leader",
            "pod-a",
            15,
        );
        let path = "/apis/coordination.k8s.io/v1/namespaces/datajump-prod/leases";
        let server = tokio::spawn(async move {
            let (method, uri, _, send) = next(&mut handle).await;
            assert_eq!(
                (method.as_str(), uri.as_str()),
                ("GET", &*format!("{path}/datajump-scheduler-leader"))
            );
            send.send_response(status(404, "NotFound"));
            let (method, uri, body, send) = next(&mut handle).await;
            assert_eq!(method, "POST");
            assert!(uri.starts_with(path), "{uri}");
            assert_eq!(body["spec"]["holderIdentity"], "pod-a");
            assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
            send.send_response(ok(body));

            // Round two: pod-b renewed a moment ago, so pod-a follows without writing.
            let (_, _, _, send) = next(&mut handle).await;
            let renewed = to_k8s_time(Utc::now()).map(|t| t.0.to_string());
            send.send_response(ok(serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "datajump-scheduler-leader", "resourceVersion": "7"},
                "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15, "renewTime": renewed},
            })));

            // Round three: the Lease expired; pod-a's takeover loses a race (409 Conflict).
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(ok(serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "datajump-scheduler-leader", "resourceVersion": "8"},
                "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15,
                         "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 2},
            })));
            let (method, _, body, send) = next(&mut handle).await;
            assert_eq!(method, "PUT");
            assert_eq!(
                body["metadata"]["resourceVersion"], "8",
                "optimistic concurrency"
            );
            assert_eq!(body["spec"]["leaseTransitions"], 3);
            send.send_response(status(409, "Conflict"));
        });
        assert!(
            lease.try_acquire_or_renew().await.expect("created"),
            "pod-a leads"
        );
        assert!(
            !lease.try_acquire_or_renew().await.expect("followed"),
            "pod-b holds it"
        );
        assert!(
            !lease.try_acquire_or_renew().await.expect("lost race"),
            "conflict means follow"
        );
        server.await.expect("mock server");
    }
}
