//! Validation of values and rendered objects (owned by the validate module work).
