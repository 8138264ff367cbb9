//! Values exactly as Helm will see them: the chart's `values.yaml`, then `values-<env>.yaml`, then
//! each `-f` file, then each `--set`, merged the way Helm merges them. Every layer remembers where it
//! came from, so a schema error can name the file or flag that put the bad value there.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::InputError;

/// One source of values and its name for error messages.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `values.yaml`, the `-f` file path, or `--set a.b=c`.
    pub origin: String,
    /// What this layer sets, as a tree (for finding where a value came from).
    pub values: Value,
    /// For `--set`: the assignment, applied in place like Helm does (so `list[0].x=1` edits the
    /// list a file defined instead of replacing it).
    pub assignment: Option<Assignment>,
}

/// All layers in precedence order (later wins) and their merge.
#[derive(Debug, Clone)]
pub struct MergedValues {
    pub layers: Vec<Layer>,
    pub merged: Value,
}

impl MergedValues {
    /// Merges layers the way Helm does. The first layer is the chart's defaults; the others are
    /// the user's values: files merge into them deeply (Helm's `mergeMaps`, nulls kept), `--set`
    /// assignments are written into them in place. The user's values are then coalesced over the
    /// defaults: maps merge, anything else replaces (a list the chart defines is replaced, not
    /// edited), and a null removes the default.
    pub fn from_layers(layers: Vec<Layer>) -> Result<Self, InputError> {
        let mut user = Value::Object(Map::new());
        for layer in layers.iter().skip(1) {
            match &layer.assignment {
                Some(a) => set_path(&mut user, &a.path, a.value.clone())
                    .map_err(|e| InputError::new(format!("{}: {e}", layer.origin)))?,
                None => merge_maps(&mut user, &layer.values),
            }
        }
        let merged = match layers.first() {
            Some(defaults) => coalesce(&defaults.values, user),
            None => user,
        };
        Ok(Self { layers, merged })
    }

    /// The layer that last set the value at `pointer` (or its nearest ancestor), for error messages.
    pub(crate) fn origin_of(&self, pointer: &str) -> Option<&str> {
        let mut p = pointer.to_string();
        loop {
            if let Some(layer) = self
                .layers
                .iter()
                .rev()
                .find(|l| l.values.pointer(&p).is_some())
            {
                return Some(&layer.origin);
            }
            if p.is_empty() {
                return None;
            }
            p.truncate(p.rfind('/').unwrap_or(0));
        }
    }
}

/// Reads the layers for an environment: chart defaults, env file, `-f` files, `--set`,
/// `--set-string`. Missing or malformed files are input errors naming the file.
pub fn load_layers(
    chart_dir: &Path,
    env_values_file: &str,
    files: &[PathBuf],
    set: &[String],
    set_string: &[String],
) -> Result<Vec<Layer>, InputError> {
    let mut layers = vec![
        read_layer(&chart_dir.join("values.yaml"))?,
        read_layer(&chart_dir.join(env_values_file))?,
    ];
    for f in files {
        layers.push(read_layer(f)?);
    }
    for (args, as_string) in [(set, false), (set_string, true)] {
        let flag = if as_string { "--set-string" } else { "--set" };
        for arg in args {
            for assignment in parse_set(arg, as_string)
                .map_err(|e| InputError::new(format!("{flag} {arg:?}: {e}")))?
            {
                let mut values = Value::Object(Map::new());
                set_path(&mut values, &assignment.path, assignment.value.clone())
                    .map_err(|e| InputError::new(format!("{flag} {arg:?}: {e}")))?;
                layers.push(Layer {
                    origin: format!("{flag} {}", assignment.source),
                    values,
                    assignment: Some(assignment),
                });
            }
        }
    }
    Ok(layers)
}

fn read_layer(path: &Path) -> Result<Layer, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read values file {}: {e}", path.display())))?;
    let values: Value = serde_yaml::from_str::<Option<Value>>(&text)
        .map_err(|e| InputError::new(format!("{}: invalid YAML: {e}", path.display())))?
        .unwrap_or(Value::Object(Map::new()));
    if !values.is_object() {
        return Err(InputError::new(format!(
            "{}: expected a mapping of values at the top level",
            path.display()
        )));
    }
    Ok(Layer {
        origin: path.display().to_string(),
        values,
        assignment: None,
    })
}

/// Helm's `mergeMaps` of the user's values files: maps merge key by key, anything else (`null`
/// included) replaces.
fn merge_maps(base: &mut Value, overlay: &Value) {
    let (Value::Object(b), Value::Object(o)) = (&mut *base, overlay) else {
        *base = overlay.clone();
        return;
    };
    for (k, ov) in o {
        match b.get_mut(k) {
            Some(bv @ Value::Object(_)) if ov.is_object() => merge_maps(bv, ov),
            _ => {
                b.insert(k.clone(), ov.clone());
            }
        }
    }
}

/// Helm's coalescing of the user's values over the chart's defaults: the user's value wins, maps
/// merge, and a user `null` removes the default (a `null` with no default stays, as in Helm).
/// Keeps the defaults' key order.
fn coalesce(defaults: &Value, user: Value) -> Value {
    let (Value::Object(d), Value::Object(mut u)) = (defaults, user.clone()) else {
        return user;
    };
    let mut out = Map::new();
    for (k, dv) in d {
        match u.shift_remove(k) {
            None => {
                out.insert(k.clone(), dv.clone());
            }
            Some(Value::Null) => {}
            Some(uv) => {
                out.insert(k.clone(), coalesce(dv, uv));
            }
        }
    }
    out.extend(u);
    Value::Object(out)
}

/// One step of a `--set` key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// One `key=value` out of a `--set` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub path: Vec<Segment>,
    pub value: Value,
    /// The `key=value` text, for error messages.
    pub source: String,
}

/// A malformed `--set` argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SetError {
    #[error("key {0:?} has no value (expected key=value)")]
    NoValue(String),
    #[error("empty key in {0:?}")]
    EmptyKey(String),
    #[error("bad list index in {0:?} (expected key[0]=value)")]
    BadIndex(String),
    #[error("list index {0} is larger than the maximum 65536")]
    IndexTooLarge(usize),
    #[error("list {0:?} must end with '}}'")]
    UnclosedList(String),
    #[error("{path} is a {found}, cannot set {what} under it")]
    TypeClash {
        path: String,
        found: &'static str,
        what: &'static str,
    },
}

/// Helm caps list indexes so a typo cannot allocate gigabytes.
const MAX_INDEX: usize = 65_536;

/// Parses one `--set` argument (`a.b=c,list[0]=x,tags={a,b}`) the way Helm's strvals does for the
/// common forms: dotted keys, `\.` and `\,` escapes, list indexes, `{a,b}` lists and typed scalars.
pub(crate) fn parse_set(arg: &str, as_string: bool) -> Result<Vec<Assignment>, SetError> {
    let parts = split_unescaped(arg, ',', true);
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        // A trailing comma is allowed, an empty item before another is not (Helm: `a=1,,b=2`).
        .filter(|(i, part)| !(part.is_empty() && *i == last))
        .map(|(_, part)| match part.is_empty() {
            true => Err(SetError::NoValue(String::new())),
            false => parse_assignment(part, as_string),
        })
        .collect()
}

fn parse_assignment(part: &str, as_string: bool) -> Result<Assignment, SetError> {
    let eq = find_unescaped(part, '=').ok_or_else(|| SetError::NoValue(part.to_string()))?;
    let (key, raw) = (&part[..eq], &part[eq + 1..]);
    let path = parse_key(key)?;
    // --set-string only keeps the values as strings: `{a,b}` is a list there too.
    let scalar = |s: &str| {
        let s = unescape(s);
        if as_string {
            Value::String(s)
        } else {
            typed_scalar(&s)
        }
    };
    let value = if let Some(list) = raw.strip_prefix('{') {
        let inner = list
            .strip_suffix('}')
            .ok_or_else(|| SetError::UnclosedList(raw.to_string()))?;
        Value::Array(
            split_unescaped(inner, ',', false)
                .iter()
                .map(|item| scalar(item))
                .collect(),
        )
    } else {
        scalar(raw)
    };
    Ok(Assignment {
        path,
        value,
        source: part.to_string(),
    })
}

fn parse_key(key: &str) -> Result<Vec<Segment>, SetError> {
    let mut segs = Vec::new();
    let mut name = String::new();
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            '.' => {
                if name.is_empty() && !matches!(segs.last(), Some(Segment::Index(_))) {
                    return Err(SetError::EmptyKey(key.to_string()));
                }
                if !name.is_empty() {
                    segs.push(Segment::Key(std::mem::take(&mut name)));
                }
            }
            '[' => {
                if !name.is_empty() {
                    segs.push(Segment::Key(std::mem::take(&mut name)));
                }
                if segs.is_empty() {
                    return Err(SetError::BadIndex(key.to_string()));
                }
                let digits: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let idx: usize = digits
                    .parse()
                    .map_err(|_| SetError::BadIndex(key.to_string()))?;
                if idx > MAX_INDEX {
                    return Err(SetError::IndexTooLarge(idx));
                }
                segs.push(Segment::Index(idx));
            }
            c => name.push(c),
        }
    }
    if !name.is_empty() {
        segs.push(Segment::Key(name));
    }
    match segs.first() {
        Some(Segment::Key(_)) => Ok(segs),
        _ => Err(SetError::EmptyKey(key.to_string())),
    }
}

/// Helm's typing of `--set` values: true/false, null, integers (no leading zeros), else a string.
/// Floats stay strings, as in Helm.
pub(crate) fn typed_scalar(s: &str) -> Value {
    if s.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if s.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if s.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if s == "0" {
        return Value::from(0);
    }
    if !s.starts_with('0')
        && let Ok(n) = s.parse::<i64>()
    {
        return Value::from(n);
    }
    Value::String(s.to_string())
}

/// Writes `value` at `path` inside `root`, creating maps and lists (padded with nulls) on the way,
/// as Helm's strvals does: a `null` is written too (coalescing then removes the chart's default),
/// a key under anything but a map is an error, a list item that is not a map becomes one.
pub(crate) fn set_path(root: &mut Value, path: &[Segment], value: Value) -> Result<(), SetError> {
    let mut cur = root;
    let mut walked = String::new();
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let next_is_index = matches!(path.get(i + 1), Some(Segment::Index(_)));
        let fresh = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        };
        cur = match seg {
            Segment::Key(k) => {
                let Value::Object(map) = cur else {
                    return Err(clash(&walked, cur, "a key"));
                };
                walked.push_str(&format!(".{k}"));
                if last {
                    map.insert(k.clone(), value);
                    return Ok(());
                }
                map.entry(k.clone()).or_insert_with(fresh)
            }
            Segment::Index(idx) => {
                let Value::Array(list) = cur else {
                    return Err(clash(&walked, cur, "a list index"));
                };
                walked.push_str(&format!("[{idx}]"));
                if list.len() <= *idx {
                    list.resize(idx + 1, Value::Null);
                }
                if last {
                    list[*idx] = value;
                    return Ok(());
                }
                // Helm: a missing nested list is created; an item that is not a map, replaced.
                let replace = match next_is_index {
                    true => list[*idx].is_null(),
                    false => !list[*idx].is_object(),
                };
                if replace {
                    list[*idx] = fresh();
                }
                &mut list[*idx]
            }
        };
    }
    Ok(())
}

fn clash(path: &str, found: &Value, what: &'static str) -> SetError {
    let found = match found {
        Value::Array(_) => "list",
        Value::Object(_) => "map",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    };
    SetError::TypeClash {
        path: path.trim_start_matches('.').to_string(),
        found,
        what,
    }
}

/// Splits on `sep` unless escaped with `\` or (when `braces`) inside `{...}`; keeps escapes.
fn split_unescaped(s: &str, sep: char, braces: bool) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let cur = parts.last_mut().expect("parts starts non-empty");
        match c {
            '\\' => {
                cur.push(c);
                cur.extend(chars.next());
            }
            '{' if braces => {
                depth += 1;
                cur.push(c);
            }
            '}' if braces => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            c if c == sep && depth == 0 => parts.push(String::new()),
            c => cur.push(c),
        }
    }
    parts
}

fn find_unescaped(s: &str, needle: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, c) if c == needle => return Some(i),
            _ => {}
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(args: &[&str]) -> Value {
        apply_onto(json!({}), args)
    }

    fn apply_onto(mut root: Value, args: &[&str]) -> Value {
        for a in args {
            for asg in parse_set(a, false).unwrap() {
                set_path(&mut root, &asg.path, asg.value).unwrap();
            }
        }
        root
    }

    #[test]
    fn set_forms_match_helm() {
        assert_eq!(apply(&["a.b=c"]), json!({"a": {"b": "c"}}));
        assert_eq!(
            apply(&["a=1,b=true,c=False,d=007,e=0,f=1.5"]),
            json!({"a": 1, "b": true, "c": false, "d": "007", "e": 0, "f": "1.5"})
        );
        assert_eq!(apply(&["list[1]=x"]), json!({"list": [null, "x"]}));
        assert_eq!(
            apply(&["l[0].name=a,l[0].port=80"]),
            json!({"l": [{"name": "a", "port": 80}]})
        );
        assert_eq!(apply(&["tags={a,b,3}"]), json!({"tags": ["a", "b", 3]}));
        assert_eq!(
            apply(&[r"nodeSelector.kubernetes\.io/os=linux"]),
            json!({"nodeSelector": {"kubernetes.io/os": "linux"}})
        );
        assert_eq!(apply(&[r"msg=a\,b"]), json!({"msg": "a,b"}));
        assert_eq!(apply(&["empty="]), json!({"empty": ""}));
        assert_eq!(apply(&["url=http://x?a=b"]), json!({"url": "http://x?a=b"}));
        // Like Helm, --set edits what the files defined in place; a null is written (coalescing
        // over the chart's defaults removes the key there).
        let base =
            json!({"l": [{"name": "a", "port": 80}, {"name": "b"}], "drop": {"x": 1}, "keep": 1});
        assert_eq!(
            apply_onto(base, &["l[0].port=8080", "drop=null"]),
            json!({"l": [{"name": "a", "port": 8080}, {"name": "b"}], "drop": null, "keep": 1})
        );
    }

    #[test]
    fn set_string_keeps_strings() {
        let a = parse_set("tag=1.10,on=true,n=42", true).unwrap();
        let vals: Vec<&Value> = a.iter().map(|a| &a.value).collect();
        assert_eq!(vals, [&json!("1.10"), &json!("true"), &json!("42")]);
    }

    #[test]
    fn malformed_set_is_rejected_with_reason() {
        assert_eq!(
            parse_set("novalue", false),
            Err(SetError::NoValue("novalue".into()))
        );
        assert_eq!(
            parse_set("a..b=1", false),
            Err(SetError::EmptyKey("a..b".into()))
        );
        assert_eq!(
            parse_set("a[x]=1", false),
            Err(SetError::BadIndex("a[x]".into()))
        );
        assert_eq!(
            parse_set("a[99999999]=1", false),
            Err(SetError::IndexTooLarge(99_999_999))
        );
        let asg = &parse_set("a.b=1", false).unwrap()[0];
        let mut root = json!({"a": "scalar"});
        let err = set_path(&mut root, &asg.path, asg.value.clone()).unwrap_err();
        assert_eq!(err.to_string(), "a is a string, cannot set a key under it");
    }

    #[test]
    fn layers_coalesce_over_the_defaults_like_helm() {
        let layer = |values: Value| Layer {
            origin: "file".into(),
            values,
            assignment: None,
        };
        let set = |arg: &str| {
            let a = parse_set(arg, false).unwrap().remove(0);
            Layer {
                origin: format!("--set {arg}"),
                values: json!({}),
                assignment: Some(a),
            }
        };
        let m = MergedValues::from_layers(vec![
            layer(json!({"a": {"x": 1, "y": 2}, "l": [1, 2], "gone": {"k": 1}, "p": [{"n": 1}]})),
            layer(json!({"a": {"y": 3, "z": 4}, "l": [9], "gone": null, "fresh": {"u": null}})),
            set("l[1]=8"),
            set("p[0].m=2"),
        ])
        .unwrap();
        // Files merge deeply; --set edits the user's list in place but replaces the chart's; a
        // null removes a default and stays where there is none.
        assert_eq!(
            m.merged,
            json!({"a": {"x": 1, "y": 3, "z": 4}, "l": [9, 8], "p": [{"m": 2}], "fresh": {"u": null}})
        );
    }

    #[test]
    fn origin_names_the_last_layer_that_set_a_value() {
        let set = parse_set("mysql.replicas=x", false).unwrap().remove(0);
        let m = MergedValues::from_layers(vec![
            Layer {
                origin: "values.yaml".into(),
                values: json!({"mysql": {"replicas": 1, "mode": "embedded"}}),
                assignment: None,
            },
            Layer {
                origin: "values-prod.yaml".into(),
                values: json!({"mysql": {"replicas": 3}}),
                assignment: None,
            },
            Layer {
                origin: "--set mysql.replicas=x".into(),
                values: json!({"mysql": {"replicas": "x"}}),
                assignment: Some(set),
            },
        ])
        .unwrap();
        assert_eq!(
            m.origin_of("/mysql/replicas"),
            Some("--set mysql.replicas=x")
        );
        assert_eq!(m.origin_of("/mysql/mode"), Some("values.yaml"));
        assert_eq!(
            m.origin_of("/mysql/missing"),
            Some("--set mysql.replicas=x")
        );
        assert_eq!(m.merged["mysql"]["replicas"], json!("x"));
    }
}
