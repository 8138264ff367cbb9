//! Differential test of the plugin's values layering (`values::load_layers` and
//! `MergedValues::from_layers`: the `--set`/`--set-string` parser and Helm's merge) against the
//! real `helm template`: a throwaway chart whose only template prints `.Values` as JSON, with chart
//! defaults and an environment file (passed as `-f`, as the plugin does), and a corpus of `--set`
//! forms. Both sides must give the same values, or both must reject the flags.
//!
//! helm comes from chart-gen's locator (`DATAJUMP_HELM`, `.tools/bin/helm`, PATH); without it the
//! test fails saying how to install it. Helm 3.18 and 4.1 agree on the whole corpus
//! (`DATAJUMP_HELM=.tools/bin/helm3` runs it against Helm 3).

use std::path::{Path, PathBuf};
use std::process::Command;

use chart_gen::helm::Helm;
use kubectl_datajump::values::{MergedValues, load_layers};
use serde_json::Value;

const ENV_FILE: &str = "values-env.yaml";

/// Chart defaults: maps, a list, scalars, so that `--set` meets all of them.
const DEFAULTS: &str = "\
image:
  repository: registry.example/app
  tag: \"1.0\"
replicas: 1
big: 1000000
ratio: 0.5
ports:
- name: http
  port: 80
- name: metrics
  port: 9090
drop:
  x: 1
keep:
  nested:
    a: 1
";

/// The environment file: an override, a list and a map of its own.
const ENV: &str = "\
replicas: 2
env:
- name: A
  value: a
- name: B
  value: b
labels:
  team: data
";

/// One `helm template` invocation: `--set` and `--set-string` arguments, each in order.
struct Case {
    set: &'static [&'static str],
    set_string: &'static [&'static str],
}

const fn set(set: &'static [&'static str]) -> Case {
    Case {
        set,
        set_string: &[],
    }
}

const CORPUS: &[Case] = &[
    set(&[]),
    // Nested keys, creating and overriding.
    set(&["a.b.c=x"]),
    set(&["image.tag=2.0,image.pullPolicy=Always"]),
    set(&["keep.nested.b=2", "keep.other=3"]),
    // Typed scalars.
    set(&["t=true,f=false,T=TRUE,F=False,n=NULL"]),
    set(&["i=1,z=0,neg=-3,plus=+4,lead=007,zz=00,negz=-0"]),
    set(&["fl=1.5,exp=1e3,hex=0x10,dot=.5,inf=Inf,nan=NaN"]),
    set(&["max=9223372036854775807,over=9223372036854775808,min=-9223372036854775808"]),
    set(&["s=hello world,u=ünïcode,sp= padded "]),
    // Empty values and separators.
    set(&["empty="]),
    set(&["a=1,,b=2", "c=3,"]),
    set(&["url=http://x?a=b&c=d"]),
    // Escapes.
    set(&[r"msg=a\,b", r"eq=a\=b", r"back=a\\b"]),
    set(&[r"nodeSelector.kubernetes\.io/os=linux"]),
    set(&[r"annotations.a\.b\.c=x,annotations.d=e"]),
    // Lists: indexes, padding, lists of maps, nested lists.
    set(&["list[0]=x"]),
    set(&["list[2]=z"]),
    set(&["l[0].name=a,l[0].port=80,l[1].name=b"]),
    set(&["m[0][1]=x"]),
    set(&["deep.l[1].m.n[0]=v"]),
    set(&["l[1].b=1"]),
    set(&["a[0]=s,a[0].b=1"]),
    // Brace lists.
    set(&["tags={a,b,3,true}"]),
    set(&["tags={}"]),
    set(&[r"tags={a\,b,c}"]),
    set(&["tags={a,b},after=1"]),
    set(&["l[0]={x,y}"]),
    set(&["tags={a,b}", "tags[3]=d"]),
    // Values with braces that are not lists.
    set(&["v=x{y}"]),
    set(&["v=x}"]),
    // null: removes a chart default, a nested one, or a key nobody set.
    set(&["drop=null"]),
    set(&["keep.nested.a=null"]),
    set(&["image=null,image.tag=3"]),
    set(&["fresh=null"]),
    set(&["fresh.x=null"]),
    // Overrides: later wins, across flags and inside one flag.
    set(&["a=1", "a=2"]),
    set(&["a=1,a=2"]),
    set(&["a.b=1", "a=3"]),
    set(&["replicas=5", "replicas=6"]),
    // Editing lists: the environment file's in place, the chart default's as Helm does.
    set(&["env[0].value=changed"]),
    set(&["env[3].name=D"]),
    set(&["ports[0].port=8080"]),
    set(&["ports[1]=null"]),
    // Replacing maps and lists with scalars and back.
    set(&["labels=none"]),
    set(&["image=plain"]),
    set(&["ports=none"]),
    set(&["replicas.x=1"]),
    // --set-string keeps strings, lists included; it applies after every --set.
    Case {
        set: &[],
        set_string: &["tag=1.10,on=true,n=42,nil=null"],
    },
    Case {
        set: &[],
        set_string: &["s={1,2}"],
    },
    Case {
        set: &["x=1,y=2"],
        set_string: &["x=3"],
    },
    Case {
        set: &["image.tag=4"],
        set_string: &["image.tag=5", "replicas=7"],
    },
    // Malformed: both must refuse.
    set(&["novalue"]),
    set(&["a[x]=1"]),
    set(&["a[99999]=1"]),
    set(&["tags={a,b"]),
];

/// Keys helm drops without a word (an empty key: the assignment, or here the whole flag, is
/// ignored). The plugin refuses them instead, naming the flag: a typo there should not install a
/// release that silently lacks the value. The test checks both halves of that difference.
const IGNORED_BY_HELM: &[&str] = &["=1", "[0]=1", ".a=1"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the plugin lives in the workspace")
        .to_path_buf()
}

/// `.Values` as helm renders them, or helm's error.
fn helm_values(helm: &Path, chart: &Path, case: &Case) -> Result<Value, String> {
    let mut cmd = Command::new(helm);
    cmd.arg("template")
        .arg("t")
        .arg(chart)
        .arg("-f")
        .arg(chart.join(ENV_FILE));
    for s in case.set {
        cmd.args(["--set", s]);
    }
    for s in case.set_string {
        cmd.args(["--set-string", s]);
    }
    let out = cmd.output().expect("run helm");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in helm's output:\n{stdout}"));
    Ok(serde_json::from_str(json).expect("helm printed JSON"))
}

fn our_values(chart: &Path, case: &Case) -> Result<Value, String> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    load_layers(
        chart,
        ENV_FILE,
        &[],
        &owned(case.set),
        &owned(case.set_string),
    )
    .and_then(MergedValues::from_layers)
    .map(|m| m.merged)
    .map_err(|e| e.to_string())
}

/// Numbers compared by value: Helm holds `--set` integers as int64 and YAML numbers as int64 or
/// float64, and its JSON prints floats like `1e+06`; serde_json keeps `1000000` and `1e+06` as
/// different numbers, but a chart sees the same value.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| v.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn set_flags_give_the_values_helm_renders() {
    let helm = Helm::locate(None, Some(&repo_root())).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let chart = dir.path();
    std::fs::create_dir(chart.join("templates")).expect("templates dir");
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: setdiff\nversion: 0.1.0\n",
    )
    .expect("Chart.yaml");
    std::fs::write(
        chart.join("templates/values.yaml"),
        "{{ toJson .Values }}\n",
    )
    .expect("template");
    std::fs::write(chart.join("values.yaml"), DEFAULTS).expect("values.yaml");
    std::fs::write(chart.join(ENV_FILE), ENV).expect("env values");

    // Two at a time: each case is one helm process.
    let results: Vec<(Result<Value, String>, Result<Value, String>)> = std::thread::scope(|s| {
        let halves: Vec<_> = CORPUS
            .chunks(CORPUS.len().div_ceil(2))
            .map(|chunk| {
                s.spawn(|| {
                    chunk
                        .iter()
                        .map(|c| (helm_values(helm.program(), chart, c), our_values(chart, c)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });

    let mut failures = Vec::new();
    let baseline = results[0]
        .0
        .as_ref()
        .expect("helm renders the chart without flags");
    for arg in IGNORED_BY_HELM {
        let case = Case {
            set: std::slice::from_ref(arg),
            set_string: &[],
        };
        let theirs = helm_values(helm.program(), chart, &case);
        let ignored = theirs.as_ref().is_ok_and(|t| t == baseline);
        if !ignored || our_values(chart, &case).is_ok() {
            failures.push(format!(
                "--set {arg:?}: expected helm to ignore it and us to refuse it; helm: {theirs:?}"
            ));
        }
    }
    for (case, (theirs, ours)) in CORPUS.iter().zip(&results) {
        let agree = match (theirs, ours) {
            (Ok(t), Ok(o)) => normalized(t) == normalized(o),
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !agree {
            let show = |r: &Result<Value, String>| match r {
                Ok(v) => v.to_string(),
                Err(e) => format!("error: {e}"),
            };
            failures.push(format!(
                "--set {:?} --set-string {:?}\n  helm: {}\n  ours: {}",
                case.set,
                case.set_string,
                show(theirs),
                show(ours)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from {}:\n{}",
        failures.len(),
        CORPUS.len(),
        helm.program().display(),
        failures.join("\n")
    );
}
