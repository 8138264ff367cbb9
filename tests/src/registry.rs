//! Real OCI registries for the image tests: Debian's `docker-registry` (the CNCF distribution
//! registry Harbor runs inside) on a free loopback port, optionally with htpasswd
//! authentication and a self-signed TLS certificate, with its access log on so a test can count
//! the uploads a command made. Seeded with small images the tests build themselves (one layer,
//! or a two-platform index) and pushed with skopeo, so the seeding does not go through the code
//! under test. Killed on drop; `restart` brings it back on the same port with the same data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// The user of an authenticated test registry.
pub const USER: &str = "robot";

/// A running registry.
#[derive(Debug)]
pub struct TestRegistry {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    /// The password of [`USER`], when the registry authenticates.
    pub password: Option<String>,
    tls: bool,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run `bash .ci/install-tools.sh`)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl TestRegistry {
    /// Starts a registry: `auth` adds htpasswd authentication, `tls` a self-signed certificate
    /// for 127.0.0.1 and localhost.
    pub fn start(auth: bool, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test\n",
            dir.path().join("data").display()
        );
        if tls {
            make_certificates(dir.path());
            let _ = write!(
                config,
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("tls.crt").display(),
                dir.path().join("tls.key").display()
            );
        }
        let password = auth.then(|| {
            let password = format!("pw-{port}-{}", std::process::id());
            let line = run(Command::new("htpasswd").args(["-Bbn", USER, &password]));
            std::fs::write(dir.path().join("htpasswd"), line).expect("htpasswd file");
            let _ = write!(
                config,
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
            password
        });
        std::fs::write(dir.path().join("config.yml"), config).expect("config");
        let mut registry = Self {
            dir,
            child: None,
            port,
            password,
            tls,
        };
        registry.restart();
        registry
    }

    /// (Re)starts the server on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt-get install docker-registry; bash .ci/install-tools.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once (SIGKILL, as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA certificate that signed the server's, when TLS is on.
    pub fn ca(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("ca.crt"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The access log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Blob uploads the registry has accepted so far (each ends in one `PUT …/blobs/uploads/`).
    pub fn blob_uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/"))
            .count()
    }

    /// skopeo's flags for this registry as a destination (`dest`) or source (`src`).
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match self.ca() {
            Some(ca) => {
                let certs = self.dir.path().join("certs.d");
                std::fs::create_dir_all(&certs).expect("certs dir");
                std::fs::copy(&ca, certs.join("ca.crt")).expect("ca copy");
                flags.push(format!("--{side}-cert-dir={}", certs.display()));
            }
            None => flags.push(format!("--{side}-tls-verify=false")),
        }
        if let Some(password) = &self.password {
            flags.push(format!("--{side}-creds={USER}:{password}"));
        }
        flags
    }

    /// The raw manifest at `repository:tag_or_digest` and its digest, read with skopeo (not
    /// with the code under test); `None` when the registry has no such manifest.
    pub fn manifest(&self, reference: &str) -> Option<(Vec<u8>, String)> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw"]);
        for f in self.skopeo_flags("src") {
            cmd.arg(f.replace("--src-", "--"));
        }
        cmd.arg(format!("docker://{}/{reference}", self.host()));
        let out = cmd.output().expect("skopeo");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("manifest unknown")
                    || err.contains("not found")
                    || err.contains("name unknown"),
                "skopeo inspect {reference}: {err}"
            );
            return None;
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout)));
        Some((out.stdout, digest))
    }

    /// Every tag of every repository, via the catalog API (curl, so auth and TLS are real).
    pub fn tags(&self) -> Vec<String> {
        let catalog: serde_json::Value =
            serde_json::from_str(&self.curl("/v2/_catalog?n=1000")).expect("catalog JSON");
        let mut all = Vec::new();
        for repo in catalog["repositories"].as_array().into_iter().flatten() {
            let repo = repo.as_str().unwrap_or_default();
            // A repository holding blobs but no manifest yet (an interrupted upload) answers
            // NAME_UNKNOWN: it has no tags.
            let Some(text) = self.curl_ok(&format!("/v2/{repo}/tags/list")) else {
                continue;
            };
            let tags: serde_json::Value = serde_json::from_str(&text).expect("tags JSON");
            for tag in tags["tags"].as_array().into_iter().flatten() {
                all.push(format!("{repo}:{}", tag.as_str().unwrap_or_default()));
            }
        }
        all.sort();
        all
    }

    fn curl(&self, path: &str) -> String {
        self.curl_ok(path)
            .unwrap_or_else(|| panic!("GET {path} on {} failed", self.host()))
    }

    /// GET `path`; `None` for a 404.
    fn curl_ok(&self, path: &str) -> Option<String> {
        let scheme = if self.tls { "https" } else { "http" };
        let mut cmd = Command::new("curl");
        cmd.args(["-sS"]);
        if let Some(ca) = self.ca() {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some(password) = &self.password {
            cmd.args(["-u", &format!("{USER}:{password}")]);
        }
        cmd.args(["-w", "\n%{http_code}"]);
        cmd.arg(format!("{scheme}://{}{path}", self.host()));
        let out = run(&mut cmd);
        let (body, code) = out.rsplit_once('\n').unwrap_or((&out, ""));
        match code {
            "200" => Some(body.to_string()),
            "404" => None,
            _ => panic!("GET {path}: HTTP {code}: {body}"),
        }
    }

    /// Asserts the index at `reference` has every platform manifest it names, by digest.
    pub fn assert_index_complete(&self, reference: &str) {
        let (index, _) = self
            .manifest(reference)
            .unwrap_or_else(|| panic!("{reference} missing"));
        let index: serde_json::Value = serde_json::from_slice(&index).expect("index JSON");
        let repository = reference.split([':', '@']).next().unwrap_or(reference);
        let children = index["manifests"].as_array().expect("an index");
        assert!(children.len() > 1, "{reference}: {index}");
        for child in children {
            let digest = child["digest"].as_str().expect("digest");
            assert!(
                self.manifest(&format!("{repository}@{digest}")).is_some(),
                "{reference}: platform manifest {digest} missing"
            );
        }
    }

    /// `helm registry login` to this registry with `helm` (a pinned tool name), keeping the
    /// login in `home` (see [`helm_in`]).
    pub fn helm_login(&self, helm: &str, home: &Path) {
        let ca = self.ca().map(|c| c.display().to_string());
        let mut cmd = helm_in(helm, home);
        cmd.args([
            "registry",
            "login",
            &self.host(),
            "--username",
            USER,
            "--password-stdin",
        ]);
        if let Some(ca) = &ca {
            cmd.args(["--ca-file", ca]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("helm");
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(
                &mut stdin,
                self.password.as_deref().unwrap_or("").as_bytes(),
            )
            .expect("password");
        }
        let out = child.wait_with_output().expect("helm");
        assert!(
            out.status.success(),
            "{helm} registry login: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Pushes an image built by [`OciLayout`] to `repository:tag` with skopeo.
    pub fn push(&self, layout: &OciLayout, name: &str, repository_tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--quiet", "--preserve-digests"]);
        cmd.args(self.skopeo_flags("dest"));
        cmd.arg(format!("oci:{}:{name}", layout.dir.display()));
        cmd.arg(format!("docker://{}/{repository_tag}", self.host()));
        run(&mut cmd);
    }
}

/// A pinned helm (`helm3`, `helm4`) run from the workspace root with its configuration, registry
/// logins and cache kept in `home`, away from the machine's own.
pub fn helm_in(helm: &str, home: &Path) -> Command {
    let mut cmd = Command::new(crate::cluster::tool(helm));
    cmd.current_dir(crate::cluster::workspace_root())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    cmd
}

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, as a site's private CA
/// would issue (a self-signed certificate that is its own CA is refused by rustls' verifier).
fn make_certificates(dir: &Path) {
    let path = |name: &str| dir.join(name);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(path("ca.key"))
        .arg("-out")
        .arg(path("ca.crt"))
        .args(["-subj", "/CN=test-registry-ca"])
        .stderr(Stdio::null()));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=test-registry",
        ])
        .arg("-keyout")
        .arg(path("tls.key"))
        .arg("-out")
        .arg(path("tls.csr"))
        .stderr(Stdio::null()));
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions file");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(path("tls.csr"))
        .arg("-CA")
        .arg(path("ca.crt"))
        .arg("-CAkey")
        .arg(path("ca.key"))
        .arg("-out")
        .arg(path("tls.crt"))
        .arg("-extfile")
        .arg(path("ext.cnf"))
        .stderr(Stdio::null()));
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The upstream references of an environment's images, from `kubectl datajump images -o json`.
pub fn upstreams(env: &str) -> Vec<String> {
    let run = crate::plugin::plugin_offline(&["images", "--env", env, "-o", "json"], None);
    assert!(run.ok, "{}", run.stderr);
    let mut list: Vec<String> = run.json()["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["upstream"].as_str().expect("upstream").to_string())
        .collect();
    list.sort();
    list.dedup();
    list
}

/// Seeds every upstream image into `registry` at `<host>/<repository>:<tag>` (library/mysql as
/// a two-platform index) with small layers; returns the `--source-mirror HOST=REGISTRY/HOST`
/// flags that read them back and the digest each was seeded with.
pub fn seed(
    registry: &TestRegistry,
    images: &[String],
    work: &Path,
) -> (Vec<String>, BTreeMap<String, String>) {
    seed_sized(registry, images, work, |i, image| {
        format!("layer of {image}\n")
            .repeat(200 + i * 10)
            .into_bytes()
    })
}

/// [`seed`] with the layer of the `i`th image from `layer(i, image)`.
pub fn seed_sized(
    registry: &TestRegistry,
    images: &[String],
    work: &Path,
    layer: impl Fn(usize, &str) -> Vec<u8>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let mut digests = BTreeMap::new();
    let mut hosts = Vec::new();
    for (i, image) in images.iter().enumerate() {
        // One layout per image, so a large seed never holds more than one image on disk.
        let dir = work.join(format!("layout-{i}"));
        let mut layout = OciLayout::new(&dir);
        let bytes = layer(i, image);
        if image.contains("library/mysql") {
            layout.add_index("img", &bytes);
        } else {
            layout.add_image("img", &bytes);
        }
        registry.push(&layout, "img", image);
        let _ = std::fs::remove_dir_all(&dir);
        let (_, digest) = registry.manifest(image).expect("seeded image");
        digests.insert(image.clone(), digest);
        let host = image.split('/').next().unwrap_or_default().to_string();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let flags = hosts
        .iter()
        .map(|h| format!("--source-mirror={h}={}/{h}", registry.host()))
        .collect();
    (flags, digests)
}

/// `n` bytes that do not repeat in any short period (a layer a registry cannot dedupe or a
/// transport compress), different for each `seed`.
pub fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// An OCI image layout on disk, written by hand (sha256 + JSON) so the seeded images do not
/// come from the code under test.
#[derive(Debug)]
pub struct OciLayout {
    pub dir: PathBuf,
    index: Vec<serde_json::Value>,
}

impl OciLayout {
    /// An empty layout in `dir`.
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let layout = Self {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        };
        layout.write_index();
        layout
    }

    fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).expect("blob");
        (format!("sha256:{hex}"), bytes.len())
    }

    fn write_index(&self) {
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.index});
        std::fs::write(self.dir.join("index.json"), index.to_string()).expect("index.json");
    }

    /// One single-layer image for `arch`, whose layer is `layer` (any bytes: registries do not
    /// look inside); returns its manifest descriptor.
    fn image(&self, arch: &str, layer: &[u8]) -> serde_json::Value {
        let (layer_digest, layer_size) = self.blob(layer);
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Entrypoint": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
        });
        let (config_digest, config_size) = self.blob(config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
        });
        let (digest, size) = self.blob(manifest.to_string().as_bytes());
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                           "platform": {"os": "linux", "architecture": arch}})
    }

    /// Adds a single-platform image named `name` with a layer of `layer` bytes.
    pub fn add_image(&mut self, name: &str, layer: &[u8]) {
        let mut desc = self.image("amd64", layer);
        desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        self.index.push(desc);
        self.write_index();
    }

    /// Adds a two-platform (amd64 + arm64) index named `name`.
    pub fn add_index(&mut self, name: &str, layer: &[u8]) {
        let amd = self.image("amd64", &[layer, b"amd64"].concat());
        let arm = self.image("arm64", &[layer, b"arm64"].concat());
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [amd, arm]});
        let (digest, size) = self.blob(index.to_string().as_bytes());
        self.index.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": name}
        }));
        self.write_index();
    }
}
