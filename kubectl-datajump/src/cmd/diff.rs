//! `diff --env E`: an upgrade preview. Compares the deployed release (`helm get manifest`) with
//! the new rendering and warns loudly about changes the API server will refuse (immutable
//! StatefulSet, Deployment and Job fields), before anyone runs the upgrade.

use std::time::Duration;

use crate::cli::ChartArgs;
use crate::cmd::Ctx;
use crate::cmd::install::prepare;
use crate::manifests::{self, ChangeKind, Comparison};
use crate::output::{self, Render, Style};

impl Render for Comparison {
    fn human(&self, style: &Style) -> String {
        let mut out = String::new();
        if self.changes.is_empty() {
            out.push_str("no changes\n");
        }
        for c in &self.changes {
            let mark = match c.change {
                ChangeKind::Added => "+ added  ",
                ChangeKind::Removed => "- removed",
                ChangeKind::Changed => "~ changed",
            };
            out.push_str(&format!("{mark} {}/{} ({})\n", c.kind, c.name, c.namespace));
            out.push_str(&c.diff);
        }
        for i in &self.immutable {
            let banner = format!(
                "!! IMMUTABLE: {} {} would change — the API server will REFUSE this upgrade",
                i.object, i.field
            );
            let banner = if style.color {
                format!("\x1b[1;31m{banner}\x1b[0m")
            } else {
                banner
            };
            out.push_str(&format!("{banner}\n   fix: {}\n", i.remedy));
        }
        out
    }
}

pub(crate) async fn run(ctx: &Ctx, chart: &ChartArgs) -> anyhow::Result<()> {
    let p = prepare(ctx, chart, Duration::from_secs(300), true).await?;
    let deployed = p
        .helm
        .run(
            &p.helm
                .get_manifest_args(&p.release.name, &p.release.namespace),
        )
        .await?;
    let next = p.helm.run(&p.helm.template_live_args(&p.release)).await?;
    let cmp = manifests::compare(
        &manifests::parse(&deployed)?,
        &manifests::without_hooks(manifests::parse(&next)?),
        &p.release.namespace,
    );
    if !cmp.immutable.is_empty() {
        // Loud on stderr as well, so a script reading JSON from stdout still shows it to a person.
        for i in &cmp.immutable {
            eprintln!(
                "WARNING: immutable field {} of {} changes; the upgrade will fail: {}",
                i.field, i.object, i.remedy
            );
        }
    }
    output::print(&cmp, &ctx.global)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::compare;
    use serde_json::json;

    #[test]
    fn immutable_changes_are_shouted_with_the_fix() {
        let old = json!({"kind": "Deployment", "metadata": {"name": "datajump-web"},
                         "spec": {"selector": {"matchLabels": {"a": "1"}}}});
        let new = json!({"kind": "Deployment", "metadata": {"name": "datajump-web"},
                         "spec": {"selector": {"matchLabels": {"a": "2"}}}});
        let text = compare(&[old], &[new], "ns").human(&Style { color: false });
        assert!(
            text.starts_with("~ changed Deployment/datajump-web (ns)\n"),
            "{text}"
        );
        assert!(
            text.contains("-      a: '1'") || text.contains("-      a: \"1\""),
            "{text}"
        );
        assert!(
            text.contains("!! IMMUTABLE: Deployment/datajump-web /spec/selector would change"),
            "{text}"
        );
        assert!(
            text.contains("fix: delete the Deployment, then upgrade"),
            "{text}"
        );
        assert_eq!(
            compare(&[], &[], "ns").human(&Style { color: false }),
            "no changes\n"
        );
    }
}
