//! How pod options are layered: a level over the one before ([`PodOptions::overlay`]) and the
//! whole stack of presets, workflow defaults and task options ([`resolve`]).

use std::collections::BTreeMap;

use super::PodOptions;

impl PodOptions {
    /// Lays `over` on top of `self` (a later level over an earlier one):
    ///
    /// - maps (`nodeSelector`, `labels`, `annotations`) merge key by key, `over` winning;
    /// - lists with an identity are appended, an entry of `over` replacing the earlier one with
    ///   the same identity in place: `volumes` and `imagePullSecrets` by name, `volumeMounts` by
    ///   mount path, `tolerations` by the whole toleration (an equal one is not repeated);
    /// - single values (`serviceAccountName`, `automountServiceAccountToken`,
    ///   `priorityClassName`, and `affinity` as a whole) are replaced when `over` sets them;
    /// - the security context merges field by field, `supplementalGroups` as a set.
    ///
    /// `preset` is not layered: [`resolve`] expands each level's preset beneath it.
    pub fn overlay(&mut self, over: &PodOptions) {
        upsert(&mut self.volumes, &over.volumes, |v| v.name.clone());
        upsert(&mut self.volume_mounts, &over.volume_mounts, |m| {
            m.mount_path.clone()
        });
        upsert(
            &mut self.image_pull_secrets,
            &over.image_pull_secrets,
            |s| s.name.clone(),
        );
        for t in &over.tolerations {
            if !self.tolerations.contains(t) {
                self.tolerations.push(t.clone());
            }
        }
        for (mine, theirs) in [
            (&mut self.node_selector, &over.node_selector),
            (&mut self.labels, &over.labels),
            (&mut self.annotations, &over.annotations),
        ] {
            mine.extend(theirs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        replace(&mut self.affinity, &over.affinity);
        replace(&mut self.service_account_name, &over.service_account_name);
        replace(
            &mut self.automount_service_account_token,
            &over.automount_service_account_token,
        );
        replace(&mut self.priority_class_name, &over.priority_class_name);
        if let Some(theirs) = &over.security_context {
            let mine = self.security_context.get_or_insert_with(Default::default);
            replace(&mut mine.run_as_user, &theirs.run_as_user);
            replace(&mut mine.run_as_group, &theirs.run_as_group);
            replace(&mut mine.fs_group, &theirs.fs_group);
            replace(
                &mut mine.read_only_root_filesystem,
                &theirs.read_only_root_filesystem,
            );
            for g in &theirs.supplemental_groups {
                if !mine.supplemental_groups.contains(g) {
                    mine.supplemental_groups.push(*g);
                }
            }
        }
    }
}

fn replace<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
    if theirs.is_some() {
        mine.clone_from(theirs);
    }
}

fn upsert<T: Clone>(mine: &mut Vec<T>, theirs: &[T], key: impl Fn(&T) -> String) {
    for item in theirs {
        let k = key(item);
        match mine.iter_mut().find(|m| key(m) == k) {
            Some(slot) => *slot = item.clone(),
            None => mine.push(item.clone()),
        }
    }
}

/// Why a task's pod options cannot be resolved: only the scheduler knows the presets, so these
/// surface when it starts an attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// A level names a preset the scheduler was not given.
    #[error("unknown pod preset {name:?} (known: {})", known_names(.known))]
    UnknownPreset {
        /// The preset named.
        name: String,
        /// The presets the scheduler knows, sorted.
        known: Vec<String>,
    },
    /// With the presets applied, a mount names a volume no level declares.
    #[error(
        "volumeMounts: {mount_path:?} mounts volume {volume:?}, which neither the presets, the workflow's podDefaults nor the task declare"
    )]
    UndeclaredVolume {
        /// The mount's path.
        mount_path: String,
        /// The volume it names.
        volume: String,
    },
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}

/// The pod options of a task: the workflow's preset, its `podDefaults`, the task's preset and its
/// `pod`, each laid over the one before with [`PodOptions::overlay`]. The result names no preset.
pub fn resolve(
    presets: &BTreeMap<String, PodOptions>,
    workflow: Option<&PodOptions>,
    task: Option<&PodOptions>,
) -> Result<PodOptions, PodError> {
    let mut pod = PodOptions::default();
    for level in [workflow, task].into_iter().flatten() {
        if let Some(name) = &level.preset {
            let preset = presets.get(name).ok_or_else(|| PodError::UnknownPreset {
                name: name.clone(),
                known: presets.keys().cloned().collect(),
            })?;
            pod.overlay(preset);
        }
        pod.overlay(level);
    }
    pod.preset = None;
    if let Some(m) = pod
        .volume_mounts
        .iter()
        .find(|m| !pod.volumes.iter().any(|v| v.name == m.name))
    {
        return Err(PodError::UndeclaredVolume {
            mount_path: m.mount_path.clone(),
            volume: m.name.clone(),
        });
    }
    Ok(pod)
}
