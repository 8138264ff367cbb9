//! A throwaway MariaDB server for tests and benches: `mariadb-install-db` into a temporary
//! directory, `mariadbd` listening on a free loopback port (and a private socket), real accounts
//! with real passwords (so a wrong password is really refused), killed and deleted on drop.
//! Works as root (passes `--user=root`, which mariadbd insists on) and as any other user.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Set to `1` to let tests that need MariaDB print "skipped" instead of failing when it is absent.
pub const SKIP_ENV: &str = "DATAJUMP_SKIP_MARIADB";

/// Loopback address the server listens on; nothing here ever leaves the machine.
pub const HOST: &str = "127.0.0.1";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;
const SOCKET: &str = "mysqld.sock";

/// Everything that can go wrong starting or talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum MariaDbError {
    #[error(
        "MariaDB is not installed: `{0}` was not found in PATH, /usr/sbin or /usr/local/sbin; \
         run `bash .ci/install-tools.sh` (or set {SKIP_ENV}=1 to skip the tests that need it)"
    )]
    NotInstalled(&'static str),
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mariadb-install-db failed ({status}):\n{output}")]
    InstallDb { status: String, output: String },
    #[error("mariadbd exited during start-up ({status}); server log:\n{log}")]
    Exited { status: String, log: String },
    #[error("mariadbd was not ready after {0:?}; server log:\n{1}")]
    NotReady(Duration, String),
    #[error("SQL as `{user}` failed: {stderr}\n  statement starts: {statement}")]
    Sql {
        user: String,
        statement: String,
        stderr: String,
    },
}

type Result<T, E = MariaDbError> = std::result::Result<T, E>;

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> MariaDbError {
    let action = action.into();
    move |source| MariaDbError::Io { action, source }
}

/// The MariaDB programs a test server needs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub install_db: PathBuf,
    pub client: PathBuf,
    pub dump: PathBuf,
}

impl Binaries {
    /// Finds the programs in PATH and the sbin directories Debian puts the server in.
    pub fn locate() -> Result<Self> {
        Ok(Self {
            server: find_program(&["mariadbd", "mysqld"])?,
            install_db: find_program(&["mariadb-install-db", "mysql_install_db"])?,
            client: find_program(&["mariadb", "mysql"])?,
            dump: find_program(&["mariadb-dump", "mysqldump"])?,
        })
    }

    /// `Ok(None)` (after printing "skipped") when MariaDB is absent and [`SKIP_ENV`] is `1`;
    /// an error naming the fix when it is absent otherwise.
    pub fn locate_or_skip(test: &str) -> Result<Option<Self>> {
        let skip = std::env::var(SKIP_ENV).as_deref() == Ok("1");
        skip_if_absent(Self::locate(), test, skip)
    }
}

/// Absent MariaDB is an error unless skipping was asked for; other errors always are.
fn skip_if_absent<T>(found: Result<T>, test: &str, skip: bool) -> Result<Option<T>> {
    match found {
        Ok(found) => Ok(Some(found)),
        Err(err @ MariaDbError::NotInstalled(_)) if skip => {
            println!("{test}: skipped ({err}; {SKIP_ENV}=1)");
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn find_program(names: &[&'static str]) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| is_executable(candidate))
        .ok_or(MariaDbError::NotInstalled(names[0]))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

/// mariadbd refuses to run as root unless told `--user=root`; /proc/self belongs to our euid.
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A user name and password to connect with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// A running server; killed and its data directory deleted when dropped.
#[derive(Debug)]
pub struct MariaDb {
    child: Child,
    port: u16,
    admin: Credentials,
    bins: Binaries,
    dir: TempDir,
}

impl MariaDb {
    /// Initialises a data directory, starts the server on a free loopback port and creates the
    /// `admin` account (all privileges) with a password; remote root accounts are removed.
    pub fn start(bins: &Binaries) -> Result<Self> {
        Self::start_on(bins, HOST)
    }

    /// As [`Self::start`], listening on `bind` (e.g. `0.0.0.0`, so that pods on this host's
    /// real node reach it at the node's bridge gateway) on a port that is free on loopback.
    pub fn start_on(bins: &Binaries, bind: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("dj-mariadb.")
            .tempdir()
            .map_err(io_err("creating the server's temporary directory"))?;
        install_db(bins, dir.path())?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            // Another process may take the port between probing and binding: try a new one.
            let port = free_port()?;
            let mut child = spawn_server(bins, dir.path(), port, bind)?;
            if let Err(err) = wait_ready(&mut child, bins, dir.path()) {
                let _ = child.kill();
                let _ = child.wait();
                if err.to_string().contains("Address already in use") {
                    last_err = Some(err);
                    continue;
                }
                return Err(err);
            }
            let server = Self {
                child,
                port,
                admin: Credentials {
                    user: "admin".into(),
                    password: "adm1n pass#'\"\\ 🔑".into(),
                },
                bins: bins.clone(),
                dir,
            };
            server.secure()?;
            return Ok(server);
        }
        Err(last_err.unwrap_or(MariaDbError::NotReady(READY_TIMEOUT, String::new())))
    }

    pub fn host(&self) -> &'static str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The programs it runs with.
    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The account with all privileges that tests and scripts use.
    pub fn admin(&self) -> &Credentials {
        &self.admin
    }

    /// The server's private temporary directory (holds the data directory and socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates an account reachable from loopback with `grants` (e.g. `ALL PRIVILEGES ON *.*`).
    pub fn create_user(&self, user: &str, password: &str, grants: &str) -> Result<Credentials> {
        let (quoted_user, quoted_password) = (sql_string(user), sql_string(password));
        self.query(&format!(
            "CREATE USER {quoted_user}@'%' IDENTIFIED BY {quoted_password};\
             GRANT {grants} TO {quoted_user}@'%';"
        ))?;
        Ok(Credentials {
            user: user.into(),
            password: password.into(),
        })
    }

    /// Runs SQL as admin over TCP; returns the tab-separated rows without a header.
    pub fn query(&self, sql: &str) -> Result<String> {
        self.query_as(&self.admin, sql)
    }

    /// Runs SQL as `creds` over TCP; returns the tab-separated rows without a header.
    pub fn query_as(&self, creds: &Credentials, sql: &str) -> Result<String> {
        let output = self.client(creds, sql.as_bytes())?;
        self.check(creds, sql, output)
    }

    /// Feeds a (possibly large) SQL script to the client's standard input, as admin.
    pub fn execute(&self, script: &[u8]) -> Result<()> {
        let output = self.client(&self.admin, script)?;
        let head = String::from_utf8_lossy(&script[..script.len().min(200)]).into_owned();
        self.check(&self.admin, &head, output).map(drop)
    }

    fn check(&self, creds: &Credentials, sql: &str, output: Output) -> Result<String> {
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(MariaDbError::Sql {
            user: creds.user.clone(),
            statement: sql.chars().take(200).collect(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    fn client(&self, creds: &Credentials, stdin: &[u8]) -> Result<Output> {
        let mut child = Command::new(&self.bins.client)
            .args(["--no-defaults", "--protocol=TCP", "--host", HOST])
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={}", creds.user))
            .args([
                "--batch",
                "--skip-column-names",
                "--default-character-set=utf8mb4",
                "--max-allowed-packet=256M",
            ])
            // The client reads MYSQL_PWD, which keeps the password off the command line.
            .env("MYSQL_PWD", &creds.password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("running {}", self.bins.client.display())))?;
        let mut input = child.stdin.take().ok_or_else(|| MariaDbError::Io {
            action: "opening the client's standard input".into(),
            source: std::io::ErrorKind::BrokenPipe.into(),
        })?;
        // Write from a thread so a client that stops reading early cannot deadlock us.
        let script = stdin.to_vec();
        let writer = thread::spawn(move || input.write_all(&script));
        let output = child
            .wait_with_output()
            .map_err(io_err("waiting for the client"))?;
        // A write error only means the client exited first; its status and stderr say why.
        let _ = writer.join();
        Ok(output)
    }

    fn secure(&self) -> Result<()> {
        let hosts = self.root_sql(
            "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user \
             WHERE Host <> 'localhost' OR User = ''",
        )?;
        let mut sql = String::new();
        for account in hosts.lines().filter(|line| !line.is_empty()) {
            sql.push_str(&format!("DROP USER {account};"));
        }
        sql.push_str(&format!(
            "CREATE USER 'admin'@'%' IDENTIFIED BY {};\
             GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION;",
            sql_string(&self.admin.password)
        ));
        self.root_sql(&sql).map(drop)
    }

    fn root_sql(&self, sql: &str) -> Result<String> {
        root_sql(&self.bins, self.dir.path(), sql)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // The data is throwaway: SIGKILL is quickest, and TempDir removes the files afterwards.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Quotes a value as an SQL string literal (backslash escapes are on by default in MariaDB).
pub fn sql_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for ch in value.chars() {
        match ch {
            '\'' => quoted.push_str("\\'"),
            '\\' => quoted.push_str("\\\\"),
            '\0' => quoted.push_str("\\0"),
            other => quoted.push(other),
        }
    }
    quoted.push('\'');
    quoted
}

/// Quotes an identifier with backquotes.
pub fn sql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((HOST, 0)).map_err(io_err("finding a free loopback port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("reading the probe socket's port"))?
        .port();
    Ok(port)
}

/// Polls through the socket as the initial passwordless root@localhost until the server answers.
fn wait_ready(child: &mut Child, bins: &Binaries, dir: &Path) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(io_err("checking on mariadbd"))? {
            return Err(MariaDbError::Exited {
                status: status.to_string(),
                log: server_log(dir),
            });
        }
        if dir.join(SOCKET).exists() && root_sql(bins, dir, "SELECT 1").is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(MariaDbError::NotReady(READY_TIMEOUT, server_log(dir)));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn root_sql(bins: &Binaries, dir: &Path, sql: &str) -> Result<String> {
    let output = Command::new(&bins.client)
        .arg("--no-defaults")
        .arg(format!("--socket={}", dir.join(SOCKET).display()))
        .args(["--user=root", "--batch", "--skip-column-names", "-e", sql])
        .output()
        .map_err(io_err(format!("running {}", bins.client.display())))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(MariaDbError::Sql {
        user: "root".into(),
        statement: sql.chars().take(200).collect(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

fn server_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("server.log")).unwrap_or_else(|err| format!("(no log: {err})"))
}

fn root_flag() -> Option<&'static str> {
    running_as_root().then_some("--user=root")
}

fn install_db(bins: &Binaries, dir: &Path) -> Result<()> {
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).map_err(io_err("creating the server's tmpdir"))?;
    let output = Command::new(&bins.install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        // Bootstraps sharing /tmp collide on temporary-table file names when run in parallel.
        .arg(format!("--tmpdir={}", tmp.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args(root_flag())
        .output()
        .map_err(io_err(format!("running {}", bins.install_db.display())))?;
    if output.status.success() {
        return Ok(());
    }
    Err(MariaDbError::InstallDb {
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

fn spawn_server(bins: &Binaries, dir: &Path, port: u16, bind: &str) -> Result<Child> {
    // A fresh log per attempt, so a failure report shows only this attempt.
    let _ = fs::remove_file(dir.join("server.log"));
    let path_arg = |flag: &str, name: &str| format!("--{flag}={}", dir.join(name).display());
    Command::new(&bins.server)
        .arg("--no-defaults")
        .args(root_flag())
        .arg(path_arg("datadir", "data"))
        .arg(path_arg("socket", SOCKET))
        .arg(path_arg("pid-file", "mysqld.pid"))
        .arg(path_arg("log-error", "server.log"))
        .arg(path_arg("tmpdir", "tmp"))
        .arg(format!("--port={port}"))
        .arg(format!("--bind-address={bind}"))
        .args([
            "--skip-name-resolve",
            "--skip-log-bin",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--max-allowed-packet=64M",
            "--innodb-buffer-pool-size=256M",
            // Durability across power loss is irrelevant for a throwaway server.
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-doublewrite=0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err(format!("starting {}", bins.server.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_string_escapes_quotes_backslashes_and_nul() {
        assert_eq!(sql_string("it's a\\b\0"), "'it\\'s a\\\\b\\0'");
    }

    #[test]
    fn sql_ident_doubles_backquotes() {
        assert_eq!(sql_ident("dj-ops"), "`dj-ops`");
        assert_eq!(sql_ident("a`b"), "`a``b`");
    }

    #[test]
    fn absent_mariadb_fails_unless_skipping_was_asked_for() {
        let absent = || Err::<(), _>(MariaDbError::NotInstalled("mariadbd"));
        assert!(matches!(skip_if_absent(absent(), "t", true), Ok(None)));
        let err = skip_if_absent(absent(), "t", false).unwrap_err();
        assert!(
            err.to_string().contains("run `bash .ci/install-tools.sh`"),
            "{err}"
        );
        let broken = Err::<(), _>(MariaDbError::NotReady(READY_TIMEOUT, String::new()));
        assert!(
            skip_if_absent(broken, "t", true).is_err(),
            "only absence may skip"
        );
        assert!(matches!(skip_if_absent(Ok(7), "t", false), Ok(Some(7))));
    }

    #[test]
    fn missing_program_names_the_install_script() {
        let err = find_program(&["definitely-not-a-mariadb-binary"]).unwrap_err();
        assert!(err.to_string().contains(".ci/install-tools.sh"), "{err}");
    }
}
