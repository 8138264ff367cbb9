//! Label selector matching (`matchLabels` and `matchExpressions`), as the API server evaluates a
//! PodDisruptionBudget's or NetworkPolicy's selector against pod labels.

use serde_json::{Map, Value};

/// Whether `selector` selects pods labelled `labels`. A missing (null) selector selects nothing;
/// an empty one selects everything, as for policy/v1 PodDisruptionBudgets.
pub(super) fn matches(selector: Option<&Value>, labels: Option<&Map<String, Value>>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return false;
    };
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(key, value)| label(key) == value.as_str());
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    let expressions_ok = expressions.into_iter().flatten().all(|expr| {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match expr.get("operator").and_then(Value::as_str) {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// Whether a selector is empty (selects every pod of the namespace).
pub(super) fn is_empty(selector: Option<&Value>) -> bool {
    let Some(selector) = selector.and_then(Value::as_object) else {
        return false;
    };
    let empty = |key: &str| match selector.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    empty("matchLabels") && empty("matchExpressions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_expressions() {
        let labels = json!({"app": "web", "tier": "front"});
        let labels = labels.as_object();
        assert!(matches(
            Some(&json!({"matchLabels": {"app": "web"}})),
            labels
        ));
        assert!(!matches(
            Some(&json!({"matchLabels": {"app": "api"}})),
            labels
        ));
        assert!(matches(Some(&json!({})), labels));
        assert!(!matches(None, labels));
        let expr = json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "back"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]});
        assert!(matches(Some(&expr), labels));
        let expr =
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]});
        assert!(!matches(Some(&expr), labels));
        assert!(is_empty(Some(&json!({}))));
        assert!(is_empty(Some(&json!({"matchLabels": {}}))));
        assert!(!is_empty(Some(&json!({"matchLabels": {"a": "b"}}))));
        assert!(!is_empty(None));
    }
}
