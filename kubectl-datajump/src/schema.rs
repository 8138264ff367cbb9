//! Checks merged values against the chart's `values.schema.json` before anything touches the
//! cluster, and words each problem as `<origin>: <JSON pointer>: <expectation>` so the user knows
//! which file or flag to fix.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::error::InputError;
use crate::values::MergedValues;

/// One schema violation, with the layer that supplied the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueProblem {
    /// JSON pointer into the merged values, e.g. `/mysql/replicas` (empty for the root).
    pub pointer: String,
    pub message: String,
    /// The file or flag that last set the value there.
    pub origin: Option<String>,
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        match &self.origin {
            Some(origin) => write!(f, "{origin}: {pointer}: {}", self.message),
            None => write!(f, "{pointer}: {}", self.message),
        }
    }
}

/// Reads `values.schema.json` from the chart directory.
pub(crate) fn read_schema(chart_dir: &Path) -> Result<Value, InputError> {
    let path = chart_dir.join("values.schema.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| InputError::new(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(format!("{}: invalid JSON: {e}", path.display())))
}

/// Validates the merged values; returns every problem (empty when valid).
pub(crate) fn check(
    schema: &Value,
    values: &MergedValues,
) -> Result<Vec<ValueProblem>, InputError> {
    let validator = chart_gen::validate::values::ValuesValidator::new(schema).map_err(|e| {
        InputError::new(format!(
            "the chart's values.schema.json is not a valid schema: {e}"
        ))
    })?;
    Ok(validator
        .validate(&values.merged)
        .into_iter()
        .map(|e| ValueProblem {
            origin: values.origin_of(&e.pointer).map(str::to_string),
            pointer: e.pointer,
            message: e.message,
        })
        .collect())
}

/// Turns problems into one input error listing all of them (exit code 2).
pub(crate) fn ensure_valid(schema: &Value, values: &MergedValues) -> Result<(), InputError> {
    let problems = check(schema, values)?;
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    Err(InputError::new(format!(
        "values do not match the chart's schema ({} problem{}):\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )))
}
