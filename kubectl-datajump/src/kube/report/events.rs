//! The namespace's events as one table, oldest first, as `kubectl events` prints them: when,
//! type, reason, the object, how many times, and the message (scrubbed like every file).

use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::ApiResource;
use serde_json::Value;

use super::collect::{Notes, list_each};
use super::{Part, Sink};
use crate::output;

/// One event as a row: `[last seen, type, reason, kind/name, count, message]`.
fn row(event: &Value) -> Vec<String> {
    let text = |p: &str| event.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let when = [
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
        "/firstTimestamp",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| text(p))
    .find(|t| !t.is_empty())
    .unwrap_or("-");
    let count = event
        .get("count")
        .and_then(Value::as_i64)
        .or_else(|| event.pointer("/series/count").and_then(Value::as_i64))
        .unwrap_or(1);
    vec![
        when.to_string(),
        text("/type").to_string(),
        text("/reason").to_string(),
        format!(
            "{}/{}",
            text("/involvedObject/kind"),
            text("/involvedObject/name")
        ),
        count.to_string(),
        text("/message").replace('\n', " "),
    ]
}

/// Writes `events.txt`; how many events.
pub(crate) async fn write(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
) -> anyhow::Result<usize> {
    let mut rows = Vec::new();
    let listed = list_each(
        client,
        notes,
        &ApiResource::erase::<Event>(&()),
        Some(ns),
        |e| {
            rows.push(row(&e));
            Ok(())
        },
    )
    .await?;
    if listed {
        // RFC 3339 in UTC sorts as text.
        rows.sort();
        let table = output::table(
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"],
            &rows,
        );
        sink.put(Part::Events(&table))?;
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_row_takes_the_newest_time_it_has() {
        let old_style = json!({
            "lastTimestamp": "2026-01-01T00:00:05Z", "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web-1"}, "count": 4,
            "message": "Back-off restarting\nfailed container"
        });
        assert_eq!(
            row(&old_style),
            [
                "2026-01-01T00:00:05Z",
                "Warning",
                "BackOff",
                "Pod/web-1",
                "4",
                "Back-off restarting failed container"
            ]
        );
        let new_style = json!({"eventTime": "2026-01-01T00:00:07.000000Z", "type": "Normal",
            "reason": "Scheduled", "involvedObject": {"kind": "Pod", "name": "x"}});
        assert_eq!(row(&new_style)[0], "2026-01-01T00:00:07.000000Z");
        assert_eq!(row(&new_style)[4], "1");
    }
}
