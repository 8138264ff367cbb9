//! Values files are checked against the values JSON schema with errors that name the JSON pointer
//! and what was expected.

use chart_gen::model::Environment;
use chart_gen::validate::Problem;
use chart_gen::validate::values::ValuesValidator;
use serde_json::{Value, json};

fn load_yaml(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/validate/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_yaml::from_str(&text).expect("fixture is YAML")
}

fn validator() -> ValuesValidator {
    let schema: Value = {
        let path = format!(
            "{}/tests/fixtures/validate/values.schema.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    ValuesValidator::new(&schema).expect("schema compiles")
}

#[test]
fn good_values_pass() {
    assert_eq!(validator().validate(&load_yaml("values-good.yaml")), vec![]);
}

#[test]
fn wrong_type_says_what_was_expected() {
    let mut values = load_yaml("values-good.yaml");
    values["scheduler"]["replicas"] = json!("three");
    let errors = validator().validate(&values);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "/scheduler/replicas: \"three\" is not of type \"integer\""
    );
}

#[test]
fn unknown_field_lists_the_offending_key() {
    let mut values = load_yaml("values-good.yaml");
    values["web"]["replcas"] = json!(2);
    values["global"]["imageRegistryy"] = json!("harbor");
    let errors = validator().validate(&values);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "/global: unknown field \"imageRegistryy\" (did you mean \"imageRegistry\"?)",
            "/web: unknown field \"replcas\" (did you mean \"replicas\"?)",
        ]
    );
}

#[test]
fn enum_and_optional_values_list_the_accepted_forms() {
    let mut values = load_yaml("values-good.yaml");
    values["kafka"]["mode"] = json!("cloud");
    let errors = validator().validate(&values);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].pointer, "/kafka/mode");
    for accepted in ["\"embedded\"", "\"operator\"", "\"external\""] {
        assert!(
            errors[0].message.contains(accepted),
            "{}",
            errors[0].message
        );
    }
}

#[test]
fn nested_error_inside_an_optional_object_is_reported_where_it_is() {
    let mut values = load_yaml("values-good.yaml");
    values["web"]["autoscaling"]["minReplicas"] = json!(-1);
    let errors = validator().validate(&values);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].pointer, "/web/autoscaling/minReplicas");
    assert!(
        errors[0].message.contains("minimum of 1"),
        "{}",
        errors[0].message
    );
}

#[test]
fn missing_required_field_is_named() {
    let mut values = load_yaml("values-good.yaml");
    values["global"]
        .as_object_mut()
        .unwrap()
        .remove("imageRegistry");
    let errors = validator().validate(&values);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "/global: missing required field \"imageRegistry\""
    );
}

#[test]
fn problems_name_env_file_and_pointer() {
    let mut values = load_yaml("values-good.yaml");
    values["scheduler"]["replicas"] = json!("three");
    let problems = Problem::from_values(
        Some(Environment::Prod),
        "charts/datajump/values-prod.yaml",
        validator().validate(&values),
    );
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "prod: charts/datajump/values-prod.yaml: /scheduler/replicas: \"three\" is not of type \"integer\""
    );
}
