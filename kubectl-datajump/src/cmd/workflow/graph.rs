//! `workflow graph`: the DAG drawn for people who would rather look than read, as a Mermaid
//! flowchart or Graphviz DOT. Tasks are nodes and `dependsOn` edges point downstream, labelled
//! with the task's trigger rule when it is not the default `AllSucceeded`; the `onExit` task
//! hangs off a "DAG end" point by dashed edges. Given a run, each task carries its phase (and
//! its attempts when more than one), coloured by phase, and the tasks drawn are those the run
//! recorded when it started.
//!
//! The rendering is pure (spec and optional run in, text out); the command around it only
//! fetches what to draw.

use std::collections::{HashMap, HashSet};

use datajump_api::{TaskPhase, TaskSpec, TriggerRule, WorkflowRunStatus, WorkflowSpec};

use crate::cli::{GlobalOpts, GraphArgs, GraphFormat, OutputFormat};
use crate::cmd::Ctx;
use crate::error::InputError;
use crate::kube::workflows;
use crate::output;
use crate::workflow_file::check_file;

/// A run whose task states the drawing shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunState<'a> {
    /// The WorkflowRun's name (in the title).
    pub name: &'a str,
    pub status: &'a WorkflowRunStatus,
}

/// The tasks a drawing shows: those the run recorded when it started (`status.workflowSpec`),
/// else the workflow's own.
pub(crate) fn drawn_spec<'a>(
    spec: &'a WorkflowSpec,
    run: Option<RunState<'a>>,
) -> &'a WorkflowSpec {
    run.and_then(|r| r.status.workflow_spec.as_deref())
        .unwrap_or(spec)
}

/// The drawing of `workflow` in `format`; ends with a newline.
pub(crate) fn render(
    format: GraphFormat,
    workflow: &str,
    spec: &WorkflowSpec,
    run: Option<RunState<'_>>,
) -> String {
    match format {
        GraphFormat::Mermaid => mermaid(workflow, spec, run),
        GraphFormat::Dot => dot(workflow, spec, run),
    }
}

/// One task as drawn.
struct Node<'a> {
    name: &'a str,
    phase: Option<TaskPhase>,
    attempts: u32,
}

impl Node<'_> {
    /// The label's lines: the name, then the phase and attempts when there is a run.
    fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.name.to_string()];
        if let Some(phase) = self.phase {
            lines.push(if self.attempts > 1 {
                format!("{phase:?}, {} attempts", self.attempts)
            } else {
                format!("{phase:?}")
            });
        }
        lines
    }
}

/// What is drawn, whatever the language.
struct Model<'a> {
    title: String,
    tasks: Vec<Node<'a>>,
    /// `(upstream, downstream, trigger rule of downstream unless the default)`, by task index.
    edges: Vec<(usize, usize, Option<TriggerRule>)>,
    /// Tasks nothing depends on: where the DAG ends.
    sinks: Vec<usize>,
    on_exit: Option<Node<'a>>,
}

impl<'a> Model<'a> {
    fn new(workflow: &str, spec: &'a WorkflowSpec, run: Option<RunState<'a>>) -> Self {
        let spec = drawn_spec(spec, run);
        let states: HashMap<&str, (TaskPhase, u32)> = run
            .map(|r| {
                r.status
                    .tasks
                    .iter()
                    .map(|t| (t.name.as_str(), (t.phase, t.attempts)))
                    .collect()
            })
            .unwrap_or_default();
        let node = |t: &'a TaskSpec| {
            let state = states.get(t.name.as_str());
            Node {
                name: &t.name,
                phase: state.map(|s| s.0),
                attempts: state.map_or(0, |s| s.1),
            }
        };
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, t) in spec.tasks.iter().enumerate() {
            index.entry(t.name.as_str()).or_insert(i);
        }
        let mut edges = Vec::new();
        for (i, t) in spec.tasks.iter().enumerate() {
            let rule = (t.trigger_rule != TriggerRule::default()).then_some(t.trigger_rule);
            let mut seen = HashSet::new();
            for upstream in &t.depends_on {
                // Unknown names are the validator's to report; the tree view skips them too.
                if let Some(&u) = index.get(upstream.as_str())
                    && seen.insert(u)
                {
                    edges.push((u, i, rule));
                }
            }
        }
        let upstreams: HashSet<usize> = edges.iter().map(|e| e.0).collect();
        let sinks = (0..spec.tasks.len())
            .filter(|i| !upstreams.contains(i))
            .collect();
        let title = match run {
            Some(r) => format!("workflow {workflow}, run {}: {:?}", r.name, r.status.phase),
            None => format!("workflow {workflow}"),
        };
        Self {
            title,
            tasks: spec.tasks.iter().map(node).collect(),
            edges,
            sinks,
            on_exit: spec.on_exit.as_deref().map(node),
        }
    }
}

/// Colours of a phase: fill, border, text.
fn colours(phase: TaskPhase) -> (&'static str, &'static str, &'static str) {
    match phase {
        TaskPhase::Succeeded => ("#c8e6c9", "#2e7d32", "#1b5e20"),
        TaskPhase::Failed => ("#ffcdd2", "#c62828", "#b71c1c"),
        TaskPhase::Running => ("#fff59d", "#f9a825", "#5d4037"),
        TaskPhase::Pending => ("#fff8e1", "#ffb300", "#5d4037"),
        TaskPhase::Skipped => ("#eeeeee", "#9e9e9e", "#616161"),
    }
}

const PHASES: [TaskPhase; 5] = [
    TaskPhase::Succeeded,
    TaskPhase::Failed,
    TaskPhase::Running,
    TaskPhase::Pending,
    TaskPhase::Skipped,
];

/// Unique identifiers: `base`, else `base` with the first free `{sep}2`, `{sep}3`, ...
struct Ids {
    used: HashSet<String>,
    sep: &'static str,
}

impl Ids {
    fn take(&mut self, base: String) -> String {
        let mut id = base.clone();
        let mut n = 2;
        while !self.used.insert(id.clone()) {
            id = format!("{base}{}{n}", self.sep);
            n += 1;
        }
        id
    }
}

/// A DOT quoted string.
fn dot_quote(s: &str) -> String {
    format!("\"{}\"", dot_escape(s))
}

/// Text inside a DOT quoted string: `"` and `\` escaped, line breaks as `\n`. In labels
/// Graphviz reads `\\` as one backslash, so a name like `a\N` is shown as written rather than
/// expanded.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Graphviz DOT: `dot -Tsvg`. Node identifiers are the task names, quoted.
pub(crate) fn dot(workflow: &str, spec: &WorkflowSpec, run: Option<RunState<'_>>) -> String {
    let model = Model::new(workflow, spec, run);
    let mut ids = Ids {
        used: HashSet::new(),
        sep: " #",
    };
    let task_ids: Vec<String> = model
        .tasks
        .iter()
        .map(|t| ids.take(t.name.to_string()))
        .collect();
    let mut out = format!("digraph {} {{\n", dot_quote(workflow));
    out.push_str(&format!("  label={};\n", dot_quote(&model.title)));
    out.push_str("  labelloc=t;\n");
    out.push_str("  fontname=Helvetica;\n");
    out.push_str(
        "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=Helvetica];\n",
    );
    out.push_str("  edge [fontname=Helvetica, fontsize=10];\n");
    let node = |id: &str, t: &Node, dashed: bool| {
        let label = t
            .lines()
            .iter()
            .map(|l| dot_escape(l))
            .collect::<Vec<_>>()
            .join("\\n");
        let style = if dashed {
            ", style=\"rounded,filled,dashed\""
        } else {
            ""
        };
        let colour = t
            .phase
            .map(|p| {
                let (fill, border, text) = colours(p);
                format!(", fillcolor=\"{fill}\", color=\"{border}\", fontcolor=\"{text}\"")
            })
            .unwrap_or_default();
        format!("  {} [label=\"{label}\"{style}{colour}];\n", dot_quote(id))
    };
    for (id, t) in task_ids.iter().zip(&model.tasks) {
        out.push_str(&node(id, t, false));
    }
    for (u, d, rule) in &model.edges {
        let label = rule
            .map(|r| format!(" [label=\"{r:?}\"]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} -> {}{label};\n",
            dot_quote(&task_ids[*u]),
            dot_quote(&task_ids[*d])
        ));
    }
    if let Some(exit) = &model.on_exit {
        let end = dot_quote(&ids.take("(DAG end)".into()));
        let exit_id = ids.take(exit.name.to_string());
        out.push_str(&format!(
            "  {end} [label=\"\", shape=point, width=0.15, fillcolor=black, xlabel=\"DAG end\"];\n"
        ));
        for s in &model.sinks {
            out.push_str(&format!(
                "  {} -> {end} [style=dashed, arrowhead=none];\n",
                dot_quote(&task_ids[*s])
            ));
        }
        out.push_str(&node(&exit_id, exit, true));
        out.push_str(&format!(
            "  {end} -> {} [style=dashed, label=\"on exit\"];\n",
            dot_quote(&exit_id)
        ));
    }
    out.push_str("}\n");
    out
}

/// Mermaid label text inside `"..."`: quotes, markup and entity starts as Mermaid entity
/// codes, line breaks as spaces.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Mermaid node id for a task: `t_` and the name with everything but ASCII letters, digits
/// and `_` as `_` (task names may contain `-`; the prefix keeps clear of keywords like `end`).
fn mermaid_id(name: &str) -> String {
    let body: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("t_{body}")
}

fn phase_class(phase: TaskPhase) -> String {
    format!("{phase:?}").to_lowercase()
}

/// Mermaid flowchart (`flowchart TD`), with a `classDef` per phase drawn.
pub(crate) fn mermaid(workflow: &str, spec: &WorkflowSpec, run: Option<RunState<'_>>) -> String {
    let model = Model::new(workflow, spec, run);
    let mut ids = Ids {
        // `dag_end` cannot collide: task ids start with `t_`.
        used: HashSet::from(["dag_end".to_string()]),
        sep: "_",
    };
    let task_ids: Vec<String> = model
        .tasks
        .iter()
        .map(|t| ids.take(mermaid_id(t.name)))
        .collect();
    let title = serde_json::to_string(&model.title).unwrap_or_default();
    let mut out = format!("---\ntitle: {title}\n---\nflowchart TD\n");
    let node = |id: &str, t: &Node| {
        let label = t
            .lines()
            .iter()
            .map(|l| mermaid_text(l))
            .collect::<Vec<_>>()
            .join("<br/>");
        let class = t
            .phase
            .map(|p| format!(":::{}", phase_class(p)))
            .unwrap_or_default();
        format!("    {id}[\"{label}\"]{class}\n")
    };
    for (id, t) in task_ids.iter().zip(&model.tasks) {
        out.push_str(&node(id, t));
    }
    for (u, d, rule) in &model.edges {
        let arrow = rule
            .map(|r| format!("-->|{r:?}|"))
            .unwrap_or_else(|| "-->".into());
        out.push_str(&format!("    {} {arrow} {}\n", task_ids[*u], task_ids[*d]));
    }
    if let Some(exit) = &model.on_exit {
        let exit_id = ids.take(mermaid_id(exit.name));
        out.push_str("    dag_end((\"DAG end\"))\n");
        for s in &model.sinks {
            out.push_str(&format!("    {} -.- dag_end\n", task_ids[*s]));
        }
        out.push_str(&node(&exit_id, exit));
        out.push_str(&format!("    dag_end -.->|on exit| {exit_id}\n"));
        out.push_str(&format!("    style {exit_id} stroke-dasharray: 5 5\n"));
    }
    let drawn: HashSet<TaskPhase> = model
        .tasks
        .iter()
        .chain(&model.on_exit)
        .filter_map(|t| t.phase)
        .collect();
    for phase in PHASES.into_iter().filter(|p| drawn.contains(p)) {
        let (fill, border, text) = colours(phase);
        out.push_str(&format!(
            "    classDef {} fill:{fill},stroke:{border},color:{text}\n",
            phase_class(phase)
        ));
    }
    out
}

/// The global `-o` chooses between table, JSON and YAML answers; a drawing is none of them.
fn refuse_structured_output(global: &GlobalOpts) -> Result<(), InputError> {
    if global.output == OutputFormat::Table {
        return Ok(());
    }
    Err(InputError::new(
        "workflow graph prints a drawing: pick its language with --format mermaid|dot \
         (for the DAG as data, use `workflow get NAME -o json`)",
    ))
}

fn print(text: &str) -> anyhow::Result<()> {
    output::write_stdout(text.as_bytes())
}

/// `workflow graph -f FILE`: offline; the file is validated first, as `workflow validate` does.
pub(crate) fn run_offline(args: &GraphArgs, global: &GlobalOpts) -> anyhow::Result<()> {
    refuse_structured_output(global)?;
    let Some(file) = &args.file else {
        return Err(InputError::new("a workflow name, --run RUN or -f FILE is required").into());
    };
    let checked = check_file(file)?;
    let name = checked
        .workflow
        .metadata
        .name
        .as_deref()
        .unwrap_or_default();
    print(&render(args.format, name, &checked.workflow.spec, None))
}

/// `workflow graph NAME` / `--run RUN`: prints [`drawing`].
pub(crate) async fn run(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    args: &GraphArgs,
) -> anyhow::Result<()> {
    if args.file.is_some() {
        return run_offline(args, &ctx.global);
    }
    refuse_structured_output(&ctx.global)?;
    print(&drawing(ctx, client, ns, args).await?)
}

/// The drawing of the workflow on the cluster with the states of `--run`, else of its latest
/// run (none with `--no-run`); with `--run` alone, of the run's workflow.
pub async fn drawing(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    args: &GraphArgs,
) -> anyhow::Result<String> {
    let wr = match (&args.run, &args.name) {
        (Some(run), _) => Some(workflows::get_run(client, ns, run).await?),
        (None, Some(name)) if !args.no_run => workflows::runs_of(client, ns, name)
            .await?
            .into_iter()
            .next(),
        _ => None,
    };
    let name = match (&args.name, &wr) {
        (Some(name), Some(r)) if r.spec.workflow_name != *name => {
            return Err(InputError::new(format!(
                "run {} is a run of workflow {}, not {name}",
                r.metadata.name.as_deref().unwrap_or_default(),
                r.spec.workflow_name
            ))
            .into());
        }
        (Some(name), _) => name.clone(),
        (None, Some(r)) => r.spec.workflow_name.clone(),
        (None, None) => {
            return Err(
                InputError::new("a workflow name, --run RUN or -f FILE is required").into(),
            );
        }
    };
    let run_name = wr
        .as_ref()
        .and_then(|r| r.metadata.name.clone())
        .unwrap_or_default();
    let state = wr
        .as_ref()
        .and_then(|r| r.status.as_ref())
        .map(|status| RunState {
            name: &run_name,
            status,
        });
    let recorded = state.and_then(|s| s.status.workflow_spec.as_deref());
    // A run that recorded its tasks can be drawn even once its workflow is gone.
    let workflow = match recorded {
        Some(_) => workflows::get(client, ns, &name).await.ok(),
        None => Some(workflows::get(client, ns, &name).await?),
    };
    let spec = match (recorded, &workflow) {
        (Some(recorded), _) => recorded,
        (None, Some(wf)) => &wf.spec,
        (None, None) => unreachable!("fetched above when the run recorded no spec"),
    };
    if let (Some(recorded), Some(wf)) = (recorded, &workflow)
        && *recorded != wf.spec
    {
        ctx.progress.line(format!(
            "note: workflow {name} changed since run {run_name} started; drawn are the tasks \
             that run executes (--no-run draws the workflow as it stands)"
        ));
    }
    Ok(render(args.format, &name, spec, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> WorkflowSpec {
        serde_yaml::from_str(yaml).expect("valid spec")
    }

    const DIAMOND: &str = r#"
tasks:
  - {name: extract, image: busybox}
  - {name: clean-up, image: busybox, dependsOn: [extract]}
  - {name: enrich, image: busybox, dependsOn: [extract]}
  - {name: load, image: busybox, dependsOn: [clean-up, enrich], triggerRule: AllDone}
onExit: {name: notify, image: busybox}
"#;

    fn status() -> WorkflowRunStatus {
        serde_json::from_value(serde_json::json!({
            "phase": "Running",
            "tasks": [
                {"name": "extract", "phase": "Succeeded", "attempts": 1},
                {"name": "clean-up", "phase": "Running", "attempts": 2},
                {"name": "enrich", "phase": "Failed", "attempts": 3},
                {"name": "load", "phase": "Pending"},
                {"name": "notify", "phase": "Pending"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn mermaid_draws_the_diamond_with_rule_exit_task_and_phases() {
        let spec = spec(DIAMOND);
        let status = status();
        let run = RunState {
            name: "etl-1",
            status: &status,
        };
        let expected = r##"---
title: "workflow etl, run etl-1: Running"
---
flowchart TD
    t_extract["extract<br/>Succeeded"]:::succeeded
    t_clean_up["clean-up<br/>Running, 2 attempts"]:::running
    t_enrich["enrich<br/>Failed, 3 attempts"]:::failed
    t_load["load<br/>Pending"]:::pending
    t_extract --> t_clean_up
    t_extract --> t_enrich
    t_clean_up -->|AllDone| t_load
    t_enrich -->|AllDone| t_load
    dag_end(("DAG end"))
    t_load -.- dag_end
    t_notify["notify<br/>Pending"]:::pending
    dag_end -.->|on exit| t_notify
    style t_notify stroke-dasharray: 5 5
    classDef succeeded fill:#c8e6c9,stroke:#2e7d32,color:#1b5e20
    classDef failed fill:#ffcdd2,stroke:#c62828,color:#b71c1c
    classDef running fill:#fff59d,stroke:#f9a825,color:#5d4037
    classDef pending fill:#fff8e1,stroke:#ffb300,color:#5d4037
"##;
        assert_eq!(mermaid("etl", &spec, Some(run)), expected);
    }

    #[test]
    fn dot_draws_the_diamond_with_rule_exit_task_and_phases() {
        let spec = spec(DIAMOND);
        let status = status();
        let run = RunState {
            name: "etl-1",
            status: &status,
        };
        let expected = r##"digraph "etl" {
  label="workflow etl, run etl-1: Running";
  labelloc=t;
  fontname=Helvetica;
  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica];
  edge [fontname=Helvetica, fontsize=10];
  "extract" [label="extract\nSucceeded", fillcolor="#c8e6c9", color="#2e7d32", fontcolor="#1b5e20"];
  "clean-up" [label="clean-up\nRunning, 2 attempts", fillcolor="#fff59d", color="#f9a825", fontcolor="#5d4037"];
  "enrich" [label="enrich\nFailed, 3 attempts", fillcolor="#ffcdd2", color="#c62828", fontcolor="#b71c1c"];
  "load" [label="load\nPending", fillcolor="#fff8e1", color="#ffb300", fontcolor="#5d4037"];
  "extract" -> "clean-up";
  "extract" -> "enrich";
  "clean-up" -> "load" [label="AllDone"];
  "enrich" -> "load" [label="AllDone"];
  "(DAG end)" [label="", shape=point, width=0.15, fillcolor=black, xlabel="DAG end"];
  "load" -> "(DAG end)" [style=dashed, arrowhead=none];
  "notify" [label="notify\nPending", style="rounded,filled,dashed", fillcolor="#fff8e1", color="#ffb300", fontcolor="#5d4037"];
  "(DAG end)" -> "notify" [style=dashed, label="on exit"];
}
"##;
        assert_eq!(dot("etl", &spec, Some(run)), expected);
    }

    #[test]
    fn without_a_run_tasks_are_plain_and_no_class_is_defined() {
        let spec = spec(DIAMOND);
        let m = render(GraphFormat::Mermaid, "etl", &spec, None);
        assert!(
            m.starts_with("---\ntitle: \"workflow etl\"\n---\nflowchart TD\n"),
            "{m}"
        );
        assert!(m.contains("    t_extract[\"extract\"]\n"), "{m}");
        assert!(!m.contains("classDef") && !m.contains(":::"), "{m}");
        let d = render(GraphFormat::Dot, "etl", &spec, None);
        assert!(d.contains("  \"extract\" [label=\"extract\"];\n"), "{d}");
        assert!(!d.contains("fillcolor=\"#"), "{d}");
    }

    #[test]
    fn the_run_draws_the_tasks_it_recorded() {
        let now = spec(DIAMOND);
        let mut then = now.clone();
        then.tasks[2].name = "score".into();
        then.tasks[3].depends_on = vec!["clean-up".into(), "score".into()];
        let mut status = status();
        status.workflow_spec = Some(std::sync::Arc::new(then));
        let run = RunState {
            name: "etl-1",
            status: &status,
        };
        let m = mermaid("etl", &now, Some(run));
        assert!(m.contains("t_score[\"score\"]\n"), "no state recorded: {m}");
        assert!(m.contains("t_score -->|AllDone| t_load"), "{m}");
        assert!(!m.contains("enrich"), "{m}");
    }

    #[test]
    fn odd_names_are_escaped_and_ids_stay_unique() {
        // Not valid task names, but a drawing must never break on what it is given.
        let spec = spec(
            r#"
tasks:
  - {name: "a\"b\\N", image: x}
  - {name: "a-b", image: x, dependsOn: ["a\"b\\N"]}
  - {name: "a_b", image: x, dependsOn: ["a-b"]}
  - {name: "end", image: x, dependsOn: ["a_b"], triggerRule: NoneFailed}
  - {name: "<i>#1 & `x`</i>", image: x}
  - {name: "(DAG end)", image: x}
onExit: {name: "line\nbreak", image: x}
"#,
        );
        let d = dot("w\"f", &spec, None);
        for line in [
            r#"digraph "w\"f" {"#,
            r#"  label="workflow w\"f";"#,
            r#"  "a\"b\\N" [label="a\"b\\N"];"#,
            r#"  "a\"b\\N" -> "a-b";"#,
            r#"  "a_b" -> "end" [label="NoneFailed"];"#,
            r#"  "<i>#1 & `x`</i>" [label="<i>#1 & `x`</i>"];"#,
            r#"  "(DAG end) #2" [label="", shape=point, width=0.15, fillcolor=black, xlabel="DAG end"];"#,
            r#"  "(DAG end)" -> "(DAG end) #2" [style=dashed, arrowhead=none];"#,
            r#"  "line\nbreak" [label="line\nbreak", style="rounded,filled,dashed"];"#,
        ] {
            assert!(d.lines().any(|l| l == line), "{line:?} missing in:\n{d}");
        }
        let m = mermaid("wf", &spec, None);
        for line in [
            r##"    t_a_b_N["a#quot;b\N"]"##,
            r##"    t_a_b["a-b"]"##,
            r##"    t_a_b_2["a_b"]"##,
            r##"    t_end["end"]"##,
            r##"    t_a_b_N --> t_a_b"##,
            r##"    t_a_b --> t_a_b_2"##,
            r##"    t_a_b_2 -->|NoneFailed| t_end"##,
            r##"    t__i__1____x___i_["#lt;i#gt;#35;1 #amp; #96;x#96;#lt;/i#gt;"]"##,
            r##"    t_line_break["line break"]"##,
            r##"    dag_end -.->|on exit| t_line_break"##,
        ] {
            assert!(m.lines().any(|l| l == line), "{line:?} missing in:\n{m}");
        }
    }
}
