//! The dependency graph of a workflow's tasks: task names, `dependsOn` references and cycles.

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::{Dag, Limits, ValidationErrors, suggestion};
use crate::k8s_names::check_dns1123_label;
use crate::workflow::WorkflowSpec;

/// Maps task names to indices, reporting invalid and duplicate names.
pub(super) fn task_index<'a>(
    spec: &'a WorkflowSpec,
    _limits: &Limits,
    errors: &mut ValidationErrors,
) -> HashMap<&'a str, usize> {
    let mut index = HashMap::with_capacity(spec.tasks.len());
    for (i, task) in spec.tasks.iter().enumerate() {
        if let Err(msg) = check_dns1123_label(&task.name) {
            errors.push(format!("spec.tasks[{i}].name"), msg);
        }
        if let Some(first) = index.insert(task.name.as_str(), i) {
            errors.push(
                format!("spec.tasks[{i}].name"),
                format!(
                    "duplicate task name {:?} (first defined at spec.tasks[{first}])",
                    task.name
                ),
            );
            // Keep the first definition as the one dependencies resolve to.
            index.insert(task.name.as_str(), first);
        }
    }
    index
}

pub(super) fn dependency_graph(
    spec: &WorkflowSpec,
    index: &HashMap<&str, usize>,
    errors: &mut ValidationErrors,
) -> Dag {
    let n = spec.tasks.len();
    let mut deps = vec![Vec::new(); n];
    let mut dependents = vec![Vec::new(); n];
    for (i, task) in spec.tasks.iter().enumerate() {
        for (k, dep) in task.depends_on.iter().enumerate() {
            let path = format!("spec.tasks[{i}].dependsOn[{k}]");
            if task.depends_on[..k].contains(dep) {
                errors.push(path, format!("{dep:?} is listed more than once"));
                continue;
            }
            match index.get(dep.as_str()) {
                None => {
                    let hint = suggestion(dep, spec.tasks.iter().map(|t| t.name.as_str()))
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    errors.push(path, format!("unknown task {dep:?}{hint}"));
                }
                Some(&j) if j == i => {
                    errors.push(path, format!("task {dep:?} cannot depend on itself"));
                }
                Some(&j) => {
                    deps[i].push(j);
                    dependents[j].push(i);
                }
            }
        }
    }
    Dag { deps, dependents }
}

/// Reports every dependency cycle as `a -> b -> a`, where `b` depends on `a`.
pub(super) fn report_cycles(spec: &WorkflowSpec, dag: &Dag, errors: &mut ValidationErrors) {
    let mut graph = DiGraph::<(), ()>::with_capacity(dag.deps.len(), dag.deps.len());
    let nodes: Vec<NodeIndex> = (0..dag.deps.len()).map(|_| graph.add_node(())).collect();
    for (task, deps) in dag.deps.iter().enumerate() {
        for &dep in deps {
            graph.add_edge(nodes[dep], nodes[task], ());
        }
    }
    let mut cycles: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
            cycle_through_first(&members, dag)
        })
        .collect();
    cycles.sort();
    for cycle in cycles {
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| spec.tasks[i].name.as_str())
            .collect();
        errors.push("spec.tasks", format!("cycle: {}", names.join(" -> ")));
    }
}

/// The shortest cycle through the lowest-index member of a strongly connected component,
/// found by breadth-first search along dependency edges (so the output is deterministic).
fn cycle_through_first(members: &[usize], dag: &Dag) -> Vec<usize> {
    let in_scc: HashSet<usize> = members.iter().copied().collect();
    let start = members.iter().copied().min().unwrap_or_default();
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next: Vec<usize> = dag.dependents[node]
            .iter()
            .copied()
            .filter(|m| in_scc.contains(m))
            .collect();
        next.sort_unstable();
        for m in next {
            if m == start {
                let mut path = vec![node];
                let mut cur = node;
                while cur != start {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(m) {
                e.insert(node);
                queue.push_back(m);
            }
        }
    }
    // Unreachable for a real SCC; fall back to listing the members.
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted
}
