//! Which images an environment runs and where each comes from: the render says what pods (and
//! operators' custom resources) pull, the values say each image's upstream, and chart-gen's
//! [`Mirror`] maps one to the other. A rendered image no values image maps to is an error — the
//! chart and the mapping would disagree, and a mirror would miss it.

use std::collections::{BTreeMap, BTreeSet};

use chart_gen::model::mirror::{ImageRef, Mirror, ValuesImage};
use serde::Serialize;

/// One image of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlannedImage {
    /// The reference the pods get (under `global.imageRegistry` when set).
    pub image: ImageRef,
    /// Where it comes from.
    pub upstream: ImageRef,
    /// The objects (and fields) that reference it.
    pub used_by: Vec<String>,
    /// The values paths of its `image` objects (empty for images an operator pulls on its own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values_paths: Vec<String>,
}

/// The render and the values disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlanError {
    /// A rendered reference that is not registry/repository:tag.
    #[error("{image} (used by {used_by}): {reason}")]
    Unparsable {
        image: String,
        used_by: String,
        reason: String,
    },
    /// A rendered image no values image maps to.
    #[error(
        "{image} (used by {used_by}) has no upstream in the values: no `image` object maps to it under {mirror}"
    )]
    NoUpstream {
        image: String,
        used_by: String,
        mirror: String,
    },
    /// Two upstream images that would land on the same reference in the mirror.
    #[error(
        "{first} and {second} would both be {target} in the mirror; keep upstream paths (no project) or change one tag"
    )]
    Collision {
        first: String,
        second: String,
        target: String,
    },
}

/// Pairs every rendered image with its upstream. `rendered` maps each rendered reference to
/// its users (`manifests::images`); `mirror` is the registry the render was made for (`None`:
/// images come from their own registries).
pub(crate) fn plan(
    rendered: &BTreeMap<String, BTreeSet<String>>,
    values: &[ValuesImage],
    mirror: Option<&Mirror>,
) -> Result<Vec<PlannedImage>, PlanError> {
    let target_of = |upstream: &ImageRef| match mirror {
        Some(m) => m.reference_for(upstream),
        None => upstream.clone(),
    };
    // Only images the render uses can clash: a turned-off component's image lands nowhere.
    let used: Vec<&ValuesImage> = values
        .iter()
        .filter(|v| rendered.contains_key(&target_of(&v.upstream).to_string()))
        .collect();
    if let Some(m) = mirror
        && let Some((first, second)) = m.collisions(used.iter().map(|v| &v.upstream)).first()
    {
        return Err(PlanError::Collision {
            first: first.to_string(),
            second: second.to_string(),
            target: m.reference_for(&first.tagged()).to_string(),
        });
    }
    let mut by_target: BTreeMap<String, (ImageRef, Vec<String>)> = BTreeMap::new();
    for v in values {
        let entry = by_target
            .entry(target_of(&v.upstream).to_string())
            .or_insert_with(|| (v.upstream.clone(), Vec::new()));
        entry.1.extend(v.values_path.clone());
    }
    let mut planned = Vec::new();
    for (image, users) in rendered {
        let used_by = users.iter().cloned().collect::<Vec<_>>();
        let parsed = ImageRef::parse(image).map_err(|e| PlanError::Unparsable {
            image: image.clone(),
            used_by: used_by.join(", "),
            reason: e.reason,
        })?;
        let (upstream, values_paths) =
            by_target
                .get(image)
                .cloned()
                .ok_or_else(|| PlanError::NoUpstream {
                    image: image.clone(),
                    used_by: used_by.join(", "),
                    mirror: mirror.map_or_else(
                        || "no global.imageRegistry".to_string(),
                        |m| format!("registry {}", m.registry),
                    ),
                })?;
        planned.push(PlannedImage {
            image: parsed,
            upstream,
            used_by,
            values_paths,
        });
    }
    // Images an operator pulls that no object names (the MySQL Operator's sidecar), when the
    // custom resource that makes it pull them is rendered.
    let rendered_kinds: BTreeSet<&str> = rendered
        .values()
        .flatten()
        .filter_map(|user| user.split('/').next())
        .collect();
    for v in values.iter().filter(|v| v.values_path.is_none()) {
        let target = target_of(&v.upstream);
        if rendered_kinds.contains("InnoDBCluster")
            && !planned.iter().any(|p| p.image.tagged() == target.tagged())
        {
            planned.push(PlannedImage {
                image: target,
                upstream: v.upstream.clone(),
                used_by: vec![
                    "InnoDBCluster (the MySQL Operator's sidecar, mysql.operator.operatorVersion)"
                        .into(),
                ],
                values_paths: Vec::new(),
            });
        }
    }
    planned.sort_by(|a, b| a.image.cmp(&b.image));
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(items: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (image, user) in items {
            map.entry(image.to_string())
                .or_default()
                .insert(user.to_string());
        }
        map
    }

    fn values() -> Vec<ValuesImage> {
        vec![
            ValuesImage {
                values_path: Some("web.image".into()),
                upstream: ImageRef::new("harbor.example.com", "datajump/web", "1"),
            },
            ValuesImage {
                values_path: Some("mysql.embedded.image".into()),
                upstream: ImageRef::new("docker.io", "library/mysql", "8"),
            },
            ValuesImage {
                values_path: Some("backup.image".into()),
                upstream: ImageRef::new("docker.io", "library/mysql", "8"),
            },
            ValuesImage {
                values_path: None,
                upstream: ImageRef::new("oracle.io", "mysql/community-operator", "9"),
            },
        ]
    }

    #[test]
    fn pairs_rendered_images_with_their_upstreams() {
        let mirror = Mirror::parse("h:5000/dj").unwrap();
        let r = rendered(&[
            ("h:5000/dj/web:1", "Deployment/web (c)"),
            ("h:5000/dj/mysql:8", "CronJob/backup (c)"),
        ]);
        let plan = plan(&r, &values(), Some(&mirror)).unwrap();
        assert_eq!(plan.len(), 2, "no InnoDBCluster rendered: no sidecar");
        assert_eq!(plan[0].upstream.to_string(), "docker.io/library/mysql:8");
        assert_eq!(
            plan[0].values_paths,
            ["mysql.embedded.image", "backup.image"]
        );
        let with_cluster = rendered(&[("h:5000/dj/web:1", "InnoDBCluster/mysql (spec.version)")]);
        let plan = super::plan(&with_cluster, &values(), Some(&mirror)).unwrap();
        assert_eq!(plan[0].image.to_string(), "h:5000/dj/community-operator:9");
    }

    #[test]
    fn an_image_without_an_upstream_is_an_error() {
        let r = rendered(&[("h.io/x/other:1", "Deployment/x (c)")]);
        let err = plan(&r, &values(), Some(&Mirror::parse("h.io").unwrap())).unwrap_err();
        assert!(matches!(err, PlanError::NoUpstream { .. }), "{err}");
        assert!(err.to_string().contains("Deployment/x"), "{err}");
        let bad = rendered(&[("mysql:8", "Pod/p (c)")]);
        assert!(matches!(
            plan(&bad, &values(), None).unwrap_err(),
            PlanError::Unparsable { .. }
        ));
    }

    #[test]
    fn one_project_refuses_two_upstreams_on_one_reference() {
        let mut v = values();
        v.push(ValuesImage {
            values_path: Some("other.image".into()),
            upstream: ImageRef::new("quay.io", "bitnami/mysql", "8"),
        });
        let one = rendered(&[("h.io/p/mysql:8", "CronJob/backup (c)")]);
        let err = plan(&one, &v, Some(&Mirror::parse("h.io/p").unwrap())).unwrap_err();
        assert!(err.to_string().contains("h.io/p/mysql:8"), "{err}");
        let kept = rendered(&[("h.io/library/mysql:8", "CronJob/backup (c)")]);
        assert!(plan(&kept, &v, Some(&Mirror::parse("h.io").unwrap())).is_ok());
        let unused = rendered(&[("h.io/p/web:1", "Deployment/web (c)")]);
        assert!(
            plan(&unused, &v, Some(&Mirror::parse("h.io/p").unwrap())).is_ok(),
            "images no object uses cannot clash"
        );
    }
}
