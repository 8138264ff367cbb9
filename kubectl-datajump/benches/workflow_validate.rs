//! `workflow validate` on a generated 1,000-task workflow (budget: under 50 ms): YAML parsing,
//! the structure against the CRD's schema (unknown fields, types), the typed schema and the
//! scheduler's DAG/cron/name validation, as the command runs them.

use criterion::{Criterion, criterion_group, criterion_main};
use kubectl_datajump::workflow_file::check_text;

/// A layered DAG: 1,000 tasks in 20 layers, each task depending on up to three in the layer above.
fn thousand_task_workflow() -> String {
    let mut yaml = String::from(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: big\nspec:\n  schedule: \"*/15 * * * *\"\n  tasks:\n",
    );
    for i in 0..1000 {
        yaml.push_str(&format!("    - name: task-{i}\n      image: busybox:1.36\n      command: [sh, -c, \"echo {i}\"]\n"));
        if i >= 50 {
            let layer_start = (i / 50 - 1) * 50;
            let deps: Vec<String> = (0..3)
                .map(|k| format!("task-{}", layer_start + (i + k * 7) % 50))
                .collect();
            yaml.push_str(&format!("      dependsOn: [{}]\n", deps.join(", ")));
        }
    }
    yaml
}

fn bench(c: &mut Criterion) {
    let yaml = thousand_task_workflow();
    let checked = check_text(&yaml).expect("the generated workflow is valid");
    assert_eq!(checked.workflow.spec.tasks.len(), 1000);
    c.bench_function("workflow validate (1000 tasks)", |b| {
        b.iter(|| check_text(std::hint::black_box(&yaml)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
