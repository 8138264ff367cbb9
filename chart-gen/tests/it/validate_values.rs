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

/// `tag: latest` in a real environment's values is refused with what is allowed, an example and
/// why, not the validator's `{"const":"latest"} is not allowed for "latest"`.
#[test]
fn a_refused_value_says_what_is_allowed_with_an_example() {
    let schema = chart_gen::schema::values_schema();
    let validator = ValuesValidator::new(&schema).expect("the generated schema compiles");
    let mut values = serde_json::to_value(chart_gen::profiles::profile(Environment::Prod)).unwrap();
    values["web"]["image"]["tag"] = json!("latest");
    values["web"]["image"]["pullPolicy"] = json!("IfNotPresnt");
    values["backup"]["schedule"] = json!("nightly");
    let lines: Vec<String> = validator
        .validate(&values)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "/backup/schedule: \"nightly\" does not have the expected form: expected a value matching \
             ^(@(hourly|daily|weekly|monthly|yearly)|(\\S+\\s+){4}\\S+)$, e.g. \"0 2 * * *\" (Cron schedule (5 fields))",
            "/web/image/pullPolicy: \"IfNotPresnt\" is not valid: expected \"Always\" or \"IfNotPresent\" \
             or \"Never\" (did you mean \"IfNotPresent\"?)",
            "/web/image/tag: \"latest\" is not allowed: expected any value but \"latest\", e.g. \"1.4.2\" \
             (Explicit tag. `latest` is refused: every deployment must name what it runs)",
        ],
        "{lines:#?}"
    );
}

/// Every example the schema gives is a value the schema accepts where it is given (a wrong
/// example in an error message would mislead more than none).
#[test]
fn the_schemas_examples_match_their_own_patterns() {
    fn visit(node: &Value, at: &str, checked: &mut usize) {
        match node {
            Value::Object(map) => {
                if let (Some(pattern), Some(examples)) = (
                    map.get("pattern").and_then(Value::as_str),
                    map.get("examples").and_then(Value::as_array),
                ) {
                    let re = regex_lite(pattern);
                    for e in examples {
                        let e = e.as_str().expect("string examples");
                        assert!(
                            re.is_valid(&json!(e)),
                            "{at}: example {e:?} does not match {pattern}"
                        );
                        *checked += 1;
                    }
                }
                for (k, v) in map {
                    visit(v, &format!("{at}/{k}"), checked);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| visit(v, at, checked)),
            _ => {}
        }
    }
    /// A one-keyword schema compiled by the same validator the plugin uses.
    fn regex_lite(pattern: &str) -> jsonschema::Validator {
        jsonschema::validator_for(&json!({"type": "string", "pattern": pattern})).unwrap()
    }
    let mut checked = 0;
    visit(&chart_gen::schema::values_schema(), "", &mut checked);
    assert!(checked >= 10, "only {checked} examples found");
}
