//! Helm's values layering, both ways: `merge` applies an overlay the way Helm merges `-f` files
//! (maps merge key by key, `null` deletes, anything else replaces), and `diff` computes the
//! smallest overlay that turns the defaults into an environment's profile.

use serde_json::{Map, Value};

/// Applies `overlay` onto `base` with Helm's coalescing rules.
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, ov) in o {
                if ov.is_null() {
                    b.remove(k);
                } else if let Some(bv) = b.get_mut(k) {
                    merge(bv, ov);
                } else {
                    b.insert(k.clone(), ov.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
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
