//! `kubectl datajump images mirror|lock` against two real registries on loopback: an "upstream"
//! seeded with small images (one a two-platform index) under every name the dev and prod
//! renders use, and a "Harbor" with htpasswd authentication and a self-signed certificate.
//! Digests are read back with skopeo, uploads counted in the registry's access log.

use std::collections::BTreeMap;

use datajump_tests::cluster::workspace_root;
use datajump_tests::plugin::plugin_offline as plugin;
use datajump_tests::registry::{TestRegistry, USER, helm_in, noise, seed, seed_sized, upstreams};
use serde_json::Value;

fn reference(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a reference: {v}"))
        .to_string()
}

fn mirror_args<'a>(
    env: &'a str,
    to: &'a str,
    flags: &'a [String],
    upstream_ca: &'a str,
    harbor_ca: &'a str,
) -> Vec<&'a str> {
    let mut args = vec![
        "images",
        "mirror",
        "--env",
        env,
        "--to",
        to,
        "--username",
        USER,
        "--password-stdin",
        "--ca-file",
        harbor_ca,
        "--ca-file",
        upstream_ca,
        "-o",
        "json",
    ];
    args.extend(flags.iter().map(String::as_str));
    args
}

#[test]
fn mirror_dev_and_prod_into_harbor_then_lock_prod() {
    let upstream = TestRegistry::start(false, true);
    let harbor = TestRegistry::start(true, true);
    let password = harbor.password.clone().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut all = upstreams("dev");
    all.extend(upstreams("prod"));
    all.sort();
    all.dedup();
    assert!(all.len() >= 15, "{all:?}");
    let (flags, seeded) = seed(&upstream, &all, work.path());
    let upstream_ca = upstream.ca().unwrap().display().to_string();
    let harbor_ca = harbor.ca().unwrap().display().to_string();

    // dev keeps upstream paths, prod goes into one project.
    let to_dev = harbor.host();
    let to_prod = format!("{}/datajump", harbor.host());
    for (env, to) in [("dev", to_dev.as_str()), ("prod", to_prod.as_str())] {
        let run = plugin(
            &mirror_args(env, to, &flags, &upstream_ca, &harbor_ca),
            Some(&password),
        );
        assert!(run.ok, "mirror {env}: {}", run.stderr);
        let report = run.json();
        assert_eq!(report["failed"], 0);
        for image in report["images"].as_array().unwrap() {
            let target = reference(&image["image"]);
            let source_up = reference(&image["source"]);
            let upstream_ref = source_up
                .strip_prefix(&format!("{}/", upstream.host()))
                .unwrap()
                .to_string();
            let path = target.strip_prefix(&format!("{}/", harbor.host())).unwrap();
            let (_, digest) = harbor
                .manifest(path)
                .unwrap_or_else(|| panic!("{target} missing in Harbor"));
            assert_eq!(
                Some(&digest),
                seeded.get(&upstream_ref),
                "{target}: digest differs from upstream {upstream_ref}"
            );
        }
    }
    // The index's platform manifests were copied too.
    harbor.assert_index_complete("datajump/mysql:8.4.3");

    // Again: nothing to copy, no upload reaches the registry.
    let uploads = harbor.blob_uploads();
    assert!(uploads > 0);
    let run = plugin(
        &mirror_args("prod", &to_prod, &flags, &upstream_ca, &harbor_ca),
        Some(&password),
    );
    assert!(run.ok, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["blobsCopied"], 0);
    assert_eq!(report["copied"], 0);
    assert_eq!(
        report["upToDate"],
        report["images"].as_array().unwrap().len()
    );
    assert_eq!(
        harbor.blob_uploads(),
        uploads,
        "a second mirror uploaded blobs"
    );

    // Lock prod against the mirror: every component's digest pinned, and the render under it
    // names only images that exist in Harbor by digest.
    let lock = work.path().join("lock.yaml");
    let lock_s = lock.display().to_string();
    let run = plugin(
        &[
            "images",
            "lock",
            "--env",
            "prod",
            "--registry",
            &to_prod,
            "--username",
            USER,
            "--password-stdin",
            "--ca-file",
            &harbor_ca,
            "-o",
            &lock_s,
        ],
        Some(&password),
    );
    assert!(run.ok, "{}", run.stderr);
    let run = plugin(
        &["images", "--env", "prod", "-f", &lock_s, "-o", "json"],
        None,
    );
    assert!(run.ok, "{}", run.stderr);
    let listed = run.json();
    let mut pinned = 0;
    for image in listed["images"].as_array().unwrap() {
        let parsed =
            chart_gen::model::mirror::ImageRef::parse(&reference(&image["image"])).unwrap();
        assert_eq!(parsed.registry, harbor.host());
        let Some(digest) = parsed.digest.as_deref() else {
            // Only the images an operator pulls by tag stay unpinned.
            assert!(image["valuesPaths"].is_null(), "{image}");
            continue;
        };
        pinned += 1;
        let repo = &parsed.repository;
        let (_, got) = harbor
            .manifest(&format!("{repo}@{digest}"))
            .unwrap_or_else(|| panic!("{repo}@{digest} not in Harbor"));
        assert_eq!(got, digest);
    }
    assert!(pinned >= 10, "{listed}");
}

#[test]
fn errors_name_the_registry_and_move_no_tag() {
    let upstream = TestRegistry::start(false, true);
    let harbor = TestRegistry::start(true, true);
    let work = tempfile::tempdir().unwrap();
    let images = upstreams("dev");
    // One upstream image is missing: the web front end's.
    let (missing, present): (Vec<String>, Vec<String>) = images
        .iter()
        .cloned()
        .partition(|i| i.contains("datajump/web:"));
    assert_eq!(missing.len(), 1);
    let (flags, _) = seed(&upstream, &present, work.path());
    let upstream_ca = upstream.ca().unwrap().display().to_string();
    let harbor_ca = harbor.ca().unwrap().display().to_string();
    let to = harbor.host();

    // A wrong password: refused, nothing tagged.
    let run = plugin(
        &mirror_args("dev", &to, &flags, &upstream_ca, &harbor_ca),
        Some("wrong"),
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("refused the credentials"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("user {USER} from --username")),
        "{}",
        run.stderr
    );
    assert!(harbor.tags().is_empty());

    // Harbor's CA not given: the certificate is named as the problem.
    let mut args = mirror_args("dev", &to, &flags, &upstream_ca, &upstream_ca);
    args.retain(|a| *a != harbor_ca.as_str());
    let run = plugin(&args, harbor.password.as_deref());
    assert!(!run.ok);
    assert!(
        run.stderr.contains("TLS certificate not trusted"),
        "{}",
        run.stderr
    );
    assert!(harbor.tags().is_empty());

    // The missing upstream image: named with its component and environment, the rest copied.
    let run = plugin(
        &mirror_args("dev", &to, &flags, &upstream_ca, &harbor_ca),
        harbor.password.as_deref(),
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("web.image"), "{}", run.stderr);
    assert!(run.stderr.contains("in dev"), "{}", run.stderr);
    assert!(run.stderr.contains(&missing[0]), "{}", run.stderr);
    let tags = harbor.tags();
    assert_eq!(tags.len(), present.len(), "{tags:?}");
    assert!(!tags.iter().any(|t| t.contains("datajump/web")));
}

/// The chart's `datajump.image` helper and chart-gen's `Mirror::reference_for` agree for every
/// environment in both layouts: every image a pod or custom resource names is the mapping of an
/// upstream image in the values (the plugin refuses the render otherwise), and it is exactly
/// what the model computes.
#[test]
fn chart_and_model_map_every_image_alike() {
    use chart_gen::model::mirror::{ImageRef, Mirror};
    for env in ["dev", "test", "staging", "prod"] {
        for to in ["mirror.local:5000", "mirror.local:5000/platform"] {
            let mirror = Mirror::parse(to).unwrap();
            let project = mirror.project().unwrap_or("");
            let registry_set = format!("global.imageRegistry={}", mirror.registry);
            let project_set = format!("global.imageProject={project}");
            let run = plugin(
                &[
                    "images",
                    "--env",
                    env,
                    "--set-string",
                    &registry_set,
                    "--set-string",
                    &project_set,
                    "-o",
                    "json",
                ],
                None,
            );
            assert!(run.ok, "{env} {to}: {}", run.stderr);
            let list = run.json();
            let images = list["images"].as_array().unwrap();
            assert!(images.len() >= 10, "{env}: {list}");
            for image in images {
                let rendered = ImageRef::parse(&reference(&image["image"])).unwrap();
                let upstream = ImageRef::parse(&reference(&image["upstream"])).unwrap();
                assert_eq!(rendered, mirror.reference_for(&upstream), "{env} {to}");
            }
            let projects: Vec<&str> = list["projects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            if project.is_empty() {
                assert!(projects.len() > 1, "{env}: {projects:?}");
            } else {
                assert_eq!(projects, [project]);
            }
        }
    }
}

/// The offsets of each entry's content in a tar file: name → (offset, size).
fn tar_entries(bytes: &[u8]) -> BTreeMap<String, (usize, usize)> {
    let mut entries = BTreeMap::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at] != 0 {
        let header = &bytes[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size =
            usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .expect("octal size");
        entries.insert(name, (at + 512, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    entries
}

#[test]
fn save_then_load_across_an_air_gap_and_install_the_chart_from_it() {
    let upstream = TestRegistry::start(false, true);
    let work = tempfile::tempdir().unwrap();
    let images = upstreams("prod");
    let (flags, seeded) = seed(&upstream, &images, work.path());
    let upstream_ca = upstream.ca().unwrap().display().to_string();
    let file = work.path().join("datajump-prod.tar");
    let file_s = file.display().to_string();

    let mut args = vec![
        "images",
        "save",
        "--env",
        "prod",
        "-o",
        &file_s,
        "--ca-file",
        &upstream_ca,
    ];
    args.extend(flags.iter().map(String::as_str));
    let run = plugin(&args, None);
    assert!(run.ok, "{}", run.stderr);
    assert!(file.is_file());
    assert!(!work.path().join("datajump-prod.partial").exists());
    let bytes = std::fs::read(&file).unwrap();
    let entries = tar_entries(&bytes);
    assert!(entries.contains_key("oci-layout") && entries.contains_key("index.json"));

    // The site's registry, reached only through the file.
    let harbor = TestRegistry::start(true, true);
    let harbor_ca = harbor.ca().unwrap().display().to_string();
    let to = format!("{}/datajump", harbor.host());
    let load = |path: &str, registry: &TestRegistry, to: &str| {
        let ca = registry.ca().unwrap().display().to_string();
        plugin(
            &[
                "images",
                "load",
                path,
                "--to",
                to,
                "--username",
                USER,
                "--password-stdin",
                "--ca-file",
                &ca,
                "-o",
                "json",
            ],
            registry.password.as_deref(),
        )
    };
    let run = load(&file_s, &harbor, &to);
    assert!(run.ok, "{}", run.stderr);
    for image in &images {
        let upstream_ref = chart_gen::model::mirror::ImageRef::parse(image).unwrap();
        let path = format!(
            "datajump/{}:{}",
            upstream_ref.short_name(),
            upstream_ref.tag
        );
        let (_, digest) = harbor
            .manifest(&path)
            .unwrap_or_else(|| panic!("{path} missing after load"));
        assert_eq!(Some(&digest), seeded.get(image), "{path}");
    }
    harbor.assert_index_complete("datajump/mysql:8.4.3");
    // Loading again uploads nothing.
    let uploads = harbor.blob_uploads();
    let run = load(&file_s, &harbor, &to);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.json()["blobsCopied"], 0);
    assert_eq!(harbor.blob_uploads(), uploads);

    // Helm 3 and 4 pull the chart from the registry as `helm install oci://…` would.
    let chart_yaml =
        std::fs::read_to_string(workspace_root().join("charts/datajump/Chart.yaml")).unwrap();
    let version = chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .unwrap()
        .trim()
        .to_string();
    for helm in ["helm3", "helm4"] {
        let home = tempfile::tempdir().unwrap();
        // `helm registry login` first: Helm 3.18.0's `pull --username/--password` does not
        // send them (helm/helm#31230).
        harbor.helm_login(helm, home.path());
        let out = helm_in(helm, home.path())
            .args([
                "pull",
                &format!("oci://{to}/datajump"),
                "--version",
                &version,
            ])
            .args(["--ca-file", &harbor_ca, "--untar", "--untardir"])
            .arg(home.path().join("pulled"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{helm} pull: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pulled = home.path().join("pulled/datajump");
        for name in ["values.yaml", "values-prod.yaml", "values.schema.json"] {
            assert_eq!(
                std::fs::read(pulled.join(name)).unwrap(),
                std::fs::read(workspace_root().join("charts/datajump").join(name)).unwrap(),
                "{helm}: {name} differs"
            );
        }
    }

    // One byte of one layer changed in transit: refused by name, nothing pushed.
    let layer = entries
        .iter()
        .filter(|(name, _)| name.starts_with("blobs/sha256/"))
        .max_by_key(|(_, (_, size))| *size)
        .map(|(name, (offset, _))| (name.clone(), *offset))
        .unwrap();
    let mut tampered = bytes.clone();
    tampered[layer.1 + 10] ^= 0xff;
    let tampered_file = work.path().join("tampered.tar");
    std::fs::write(&tampered_file, tampered).unwrap();
    let empty = TestRegistry::start(true, true);
    let to_empty = format!("{}/datajump", empty.host());
    let run = load(&tampered_file.display().to_string(), &empty, &to_empty);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let digest = layer.0.trim_start_matches("blobs/sha256/");
    assert!(run.stderr.contains(digest), "{}", run.stderr);
    assert!(run.stderr.contains("damaged"), "{}", run.stderr);
    assert!(run.stderr.contains("it belongs to"), "{}", run.stderr);
    assert!(empty.tags().is_empty());
    assert_eq!(empty.blob_uploads(), 0);
}

/// The registry is killed while a large layer is being uploaded: the mirror fails naming the
/// registry, the image being copied has no tag (only complete content is ever tagged), and a
/// second mirror once the registry is back completes with the upstream digests.
#[test]
fn a_registry_that_dies_mid_copy_leaves_no_tag_and_a_second_run_completes() {
    let upstream = TestRegistry::start(false, true);
    let mut harbor = TestRegistry::start(true, true);
    let work = tempfile::tempdir().unwrap();
    let images = upstreams("dev");
    let big = images
        .iter()
        .find(|i| i.contains("datajump/web:"))
        .unwrap()
        .clone();
    // The web front end's image gets a 128 MiB layer, uploaded long enough to be cut off.
    let (flags, seeded) = seed_sized(&upstream, &images, work.path(), |i, image| {
        if image == big {
            noise(128 << 20, 7)
        } else {
            format!("layer {i} of {image}").into_bytes()
        }
    });
    let upstream_ca = upstream.ca().unwrap().display().to_string();
    let harbor_ca = harbor.ca().unwrap().display().to_string();
    let to = harbor.host();
    let args: Vec<String> = mirror_args("dev", &to, &flags, &upstream_ca, &harbor_ca)
        .into_iter()
        .map(str::to_string)
        .collect();
    let password = harbor.password.clone().unwrap();

    let runner = {
        let args = args.clone();
        let password = password.clone();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            plugin(&args, Some(&password))
        })
    };
    let web_repo = big
        .split_once('/')
        .unwrap()
        .1
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let started = std::time::Instant::now();
    while !harbor
        .log()
        .lines()
        .any(|l| l.contains(&format!("\"POST /v2/{web_repo}/blobs/uploads/")))
    {
        assert!(started.elapsed().as_secs() < 60, "the upload never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    harbor.kill();
    let run = runner.join().unwrap();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains(&harbor.host()), "{}", run.stderr);
    assert!(run.stderr.contains("web.image"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the connection was lost"),
        "{}",
        run.stderr
    );

    harbor.restart();
    let tags = harbor.tags();
    assert!(
        !tags.iter().any(|t| t.starts_with(&format!("{web_repo}:"))),
        "{tags:?}"
    );

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = plugin(&args, Some(&password));
    assert!(run.ok, "{}", run.stderr);
    for image in &images {
        let path = image.split_once('/').unwrap().1;
        let (_, digest) = harbor
            .manifest(path)
            .unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(Some(&digest), seeded.get(image), "{path}");
    }
}

/// Credentials from a Docker config (no flags), and `--platform`: the multi-platform image
/// arrives as a new index holding only the platform asked for.
#[test]
fn docker_config_credentials_and_one_platform() {
    let upstream = TestRegistry::start(false, true);
    let harbor = TestRegistry::start(true, true);
    let work = tempfile::tempdir().unwrap();
    let images = upstreams("dev");
    let (flags, seeded) = seed(&upstream, &images, work.path());
    let docker = work.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_encode(&format!("{USER}:{}", harbor.password.as_deref().unwrap()));
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            harbor.host()
        ),
    )
    .unwrap();
    let up_ca = upstream.ca().unwrap().display().to_string();
    let harbor_ca = harbor.ca().unwrap().display().to_string();
    let to = format!("{}/arm", harbor.host());
    let mut args = vec![
        "images",
        "mirror",
        "--env",
        "dev",
        "--to",
        &to,
        "--platform",
        "linux/arm64",
        "--ca-file",
        &up_ca,
        "--ca-file",
        &harbor_ca,
        "-o",
        "json",
    ];
    args.extend(flags.iter().map(String::as_str));
    let home = tempfile::tempdir().unwrap();
    let mut cmd = datajump_tests::plugin::plugin_command();
    cmd.args(&args)
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", &docker)
        .env_remove("HELM_REGISTRY_CONFIG");
    let run = datajump_tests::plugin::run_logged(cmd, &args, None);
    assert!(run.ok, "{}", run.stderr);

    let mysql = images.iter().find(|i| i.contains("library/mysql")).unwrap();
    let (index, digest) = harbor.manifest("arm/mysql:8.4.3").expect("mysql");
    assert_ne!(
        Some(&digest),
        seeded.get(mysql),
        "a filtered index is a new document"
    );
    let index: Value = serde_json::from_slice(&index).unwrap();
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["arm64"]);
    let child = index["manifests"][0]["digest"].as_str().unwrap();
    assert!(harbor.manifest(&format!("arm/mysql@{child}")).is_some());
    // Single-platform images are copied unchanged.
    let web = images.iter().find(|i| i.contains("datajump/web:")).unwrap();
    let (_, web_digest) = harbor.manifest("arm/web:1.0.0").expect("web");
    assert_eq!(Some(&web_digest), seeded.get(web));
}

/// Standard base64 (the Docker config's `auth` field), written out so the test does not share
/// the plugin's encoder.
fn base64_encode(text: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
