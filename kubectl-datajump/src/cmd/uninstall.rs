//! `uninstall --env E --yes`: removes the Helm release. The namespace, its PVCs (MySQL data,
//! backups) and the CRDs stay, so an uninstall is never a data loss.

use crate::cli::ConfirmArgs;
use crate::cmd::{Ctx, confirm};
use crate::output::{self, Changed};

pub(crate) async fn run(ctx: &Ctx, args: &ConfirmArgs) -> anyhow::Result<()> {
    let env = ctx.env()?;
    let namespace = ctx.namespace()?;
    confirm(Some(env), "uninstall", &ctx.global.release, args)?;
    let helm = ctx.helm()?;
    ctx.progress.line(format!(
        "uninstalling release {} from {namespace} ...",
        ctx.global.release
    ));
    helm.run(&helm.uninstall_args(
        &ctx.global.release,
        &namespace,
        std::time::Duration::from_secs(600),
    ))
    .await?;
    let uninstalled = Changed {
        kind: "Release",
        line: format!(
            "release {} uninstalled from {namespace}; the namespace, its PersistentVolumeClaims and the CRDs were kept",
            ctx.global.release
        ),
        name: ctx.global.release.clone(),
        namespace,
        action: "uninstalled",
    };
    output::print(&uninstalled, &ctx.global)
}
