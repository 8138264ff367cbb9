//! Leader election on a `coordination.k8s.io/v1` Lease: the decision logic, pure and tested
//! here; the Lease reads and writes live in `controller/lease.rs`.
//!
//! Only the holder acts. A holder renews every [`retry_period`]; a follower takes over once
//! `renewTime + leaseDurationSeconds` has passed, so with the default 15 s a crashed leader is
//! replaced within about 15–17 s. Writes use the Lease's resourceVersion, so two candidates
//! racing for an expired Lease cannot both win.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

/// The parts of a Lease that matter for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// Current holder (`spec.holderIdentity`).
    pub holder: Option<String>,
    /// Last renewal (`spec.renewTime`).
    pub renewed: Option<DateTime<Utc>>,
    /// `spec.leaseDurationSeconds`.
    pub duration_seconds: i64,
}

/// What a candidate should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease exists: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// It is free or expired: take it over (incrementing `leaseTransitions`).
    TakeOver,
    /// Someone else holds it until `until`.
    Follow {
        /// The holder.
        holder: String,
        /// When their hold expires unless renewed.
        until: DateTime<Utc>,
    },
}

/// Decides, for candidate `me` at `now`, given the Lease as last read.
pub fn decide(lease: Option<&LeaseView>, me: &str, now: DateTime<Utc>) -> LeaseDecision {
    let Some(lease) = lease else {
        return LeaseDecision::Create;
    };
    match lease.holder.as_deref() {
        Some(h) if h == me => LeaseDecision::Renew,
        None | Some("") => LeaseDecision::TakeOver,
        Some(holder) => {
            // A Lease never renewed counts as expired.
            let until = lease
                .renewed
                .map_or(now, |r| r + Duration::seconds(lease.duration_seconds));
            if until <= now {
                LeaseDecision::TakeOver
            } else {
                LeaseDecision::Follow {
                    holder: holder.to_string(),
                    until,
                }
            }
        }
    }
}

/// How often candidates try to acquire and holders renew: a fifth of the lease duration (at
/// least 1 s), so a holder gets several chances to renew before it expires.
pub fn retry_period(lease_duration_seconds: u32) -> StdDuration {
    StdDuration::from_secs(u64::from((lease_duration_seconds / 5).max(1)))
}

/// How long a holder may go without a successful renewal before it stops acting: two thirds
/// of the lease duration (client-go's 10 s of 15). A follower takes over only after the whole
/// duration since the last renewal, so the old holder has stopped before a new one starts,
/// with a third of the lease to spare for clock skew and the work in flight. Every renewal
/// call is also cut off at this deadline, so a hanging request (or a client retrying 429/503
/// on its own) cannot keep a holder acting past it.
pub fn renew_deadline(lease_duration_seconds: u32) -> StdDuration {
    let ms = u64::from(lease_duration_seconds) * 1000 * 2 / 3;
    StdDuration::from_millis(ms.max(retry_period(lease_duration_seconds).as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s)
            .single()
            .expect("valid")
    }

    fn held_by(holder: &str, renewed: u32) -> LeaseView {
        LeaseView {
            holder: Some(holder.into()),
            renewed: Some(t(renewed)),
            duration_seconds: 15,
        }
    }

    #[test]
    fn a_holder_stops_before_a_follower_may_take_over() {
        for duration in [3u32, 15, 60] {
            let deadline = renew_deadline(duration);
            assert!(
                deadline < StdDuration::from_secs(u64::from(duration)),
                "{duration}"
            );
            assert!(deadline >= retry_period(duration), "{duration}");
        }
        assert_eq!(renew_deadline(15), StdDuration::from_secs(10));
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", t(0)), LeaseDecision::Create);
        assert_eq!(
            decide(Some(&held_by("a", 0)), "a", t(30)),
            LeaseDecision::Renew
        );
        assert_eq!(
            decide(Some(&held_by("b", 0)), "a", t(14)),
            LeaseDecision::Follow {
                holder: "b".into(),
                until: t(15)
            }
        );
        assert_eq!(
            decide(Some(&held_by("b", 0)), "a", t(15)),
            LeaseDecision::TakeOver
        );
        let released = LeaseView {
            holder: None,
            renewed: Some(t(0)),
            duration_seconds: 15,
        };
        assert_eq!(decide(Some(&released), "a", t(1)), LeaseDecision::TakeOver);
    }

    #[test]
    fn three_replicas_fail_over_within_the_lease_duration_plus_one_period() {
        // Replica "a" leads and dies at t=3 (last renewal). "b" and "c" poll every period.
        let period = retry_period(15).as_secs() as u32;
        let lease = held_by("a", 3);
        let takeover = (3..60)
            .step_by(period as usize)
            .find(|&s| decide(Some(&lease), "b", t(s)) == LeaseDecision::TakeOver)
            .expect("b takes over");
        assert!(
            takeover - 3 <= 15 + period,
            "failover took {} s",
            takeover - 3
        );
        // Once b holds it (renewed at takeover), c keeps following.
        let lease = held_by("b", takeover);
        assert!(matches!(
            decide(Some(&lease), "c", t(takeover + 1)),
            LeaseDecision::Follow { .. }
        ));
        assert_eq!(period, 3);
    }
}
