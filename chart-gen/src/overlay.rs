//! Helm's values layering, both ways: `merge` applies an overlay the way Helm merges `-f` files
//! (maps merge key by key, `null` deletes, anything else replaces), and `diff` computes the
//! smallest overlay that turns the defaults into an environment's profile.

use serde_json::{Map, Value};

/// Applies `overlay` onto `base` with Helm's coalescing rules: mappings merge key by key, anything
/// else replaces, and `null` deletes the key (Helm's way to remove a chart default) — also inside
/// a mapping the base does not have yet, which arrives without its `null`s.
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, ov) in o {
                match (b.get_mut(k), ov) {
                    (_, Value::Null) => {
                        b.remove(k);
                    }
                    (Some(bv @ Value::Object(_)), Value::Object(_)) => merge(bv, ov),
                    _ => {
                        b.insert(k.clone(), without_nulls(ov));
                    }
                }
            }
        }
        (b, o) => *b = without_nulls(o),
    }
}

/// `v` with every `null` inside its mappings removed.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The overlay that `merge` turns `base` into `target` with, or `None` when they are equal.
pub fn diff(base: &Value, target: &Value) -> Option<Value> {
    match (base, target) {
        (Value::Object(b), Value::Object(t)) => {
            let mut out = Map::new();
            for (k, tv) in t {
                match b.get(k) {
                    Some(bv) => {
                        if let Some(d) = diff(bv, tv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in b.keys().filter(|k| !t.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (b, t) if b == t => None,
        (_, t) => Some(t.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_inside_a_new_mapping_are_dropped() {
        let mut base = json!({"a": 1});
        merge(
            &mut base,
            &json!({"b": {"x": null, "y": 2}, "a": {"c": null}}),
        );
        assert_eq!(base, json!({"a": {}, "b": {"y": 2}}));
    }

    #[test]
    fn merge_follows_helm_rules() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": 1});
        merge(&mut base, &json!({"a": {"c": [3]}, "d": null, "f": true}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [3]}, "e": 1, "f": true}));
    }

    #[test]
    fn diff_then_merge_round_trips() {
        let base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x", "g": {"h": 1}});
        let target = json!({"a": {"b": 2, "c": [1, 2]}, "g": {"h": 1}, "n": {"m": 0}});
        let overlay = diff(&base, &target).unwrap();
        assert_eq!(overlay, json!({"a": {"b": 2}, "d": null, "n": {"m": 0}}));
        let mut merged = base.clone();
        merge(&mut merged, &overlay);
        assert_eq!(merged, target);
        assert_eq!(diff(&target, &target), None);
    }
}
