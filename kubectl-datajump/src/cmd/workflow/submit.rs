//! `workflow validate -f` (offline, a Workflow or a WorkflowRun manifest) and `workflow submit
//! -f`: a checked file, server-side applied exactly as written, into the namespace it names or
//! `-n`'s (a conflict between the two is an input error, not a silent choice).

use std::path::Path;

use serde_json::Value;

use super::WORKFLOWS;
use super::outcomes::Validated;
use crate::cli::GlobalOpts;
use crate::cmd::Ctx;
use crate::error::InputError;
use crate::kube::workflows;
use crate::output::{self, Changed};
use crate::workflow_file::{Manifest, check_file, check_manifest_file};

/// `workflow validate -f`: offline; prints that the manifest is valid, or every problem
/// (exit 2).
pub(crate) fn validate(path: &Path, global: &GlobalOpts) -> anyhow::Result<()> {
    let file = path.display().to_string();
    let answer = match check_manifest_file(path)? {
        Manifest::Workflow(checked) => Validated {
            file,
            kind: "Workflow",
            name: checked.workflow.metadata.name.clone().unwrap_or_default(),
            valid: true,
            tasks: Some(checked.workflow.spec.tasks.len()),
            workflow: None,
        },
        Manifest::Run(run) => Validated {
            file,
            kind: "WorkflowRun",
            name: run.metadata.name.clone().unwrap_or_default(),
            valid: true,
            tasks: None,
            workflow: Some(run.spec.workflow_name.clone()),
        },
    };
    output::print(&answer, global)
}

/// Where a submitted workflow went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub namespace: String,
    pub name: String,
}

/// `workflow submit -f`: checks the file, then server-side applies it into its own namespace,
/// else `ns` (`-n`, `--env`'s or the context's).
pub(crate) async fn submit(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    file: &Path,
) -> anyhow::Result<Applied> {
    let checked = check_file(file)?;
    let name = checked.workflow.metadata.name.clone().unwrap_or_default();
    let ns = match checked.workflow.metadata.namespace.as_deref() {
        Some(file_ns)
            if ctx
                .global
                .namespace
                .as_deref()
                .is_some_and(|n| n != file_ns) =>
        {
            return Err(InputError::new(format!(
                "{}: metadata.namespace {file_ns:?} differs from -n {:?}",
                file.display(),
                ctx.global.namespace.as_deref().unwrap_or_default()
            ))
            .into());
        }
        Some(file_ns) => file_ns.to_string(),
        None => ns.to_string(),
    };
    let mut document = checked.document;
    document["metadata"]["namespace"] = Value::String(ns.clone());
    workflows::apply(client, &ns, &name, &document).await?;
    let remark = format!(" in {ns}");
    let applied = Changed::object("Workflow", WORKFLOWS, &name, &ns, "applied", &remark);
    output::print(&applied, &ctx.global)?;
    Ok(Applied {
        namespace: ns,
        name,
    })
}
