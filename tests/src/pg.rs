//! A real PostgreSQL server for end-to-end tests, started by the tests.
//!
//! [`PgCluster::start`] runs `initdb` into a fresh temporary directory and
//! `pg_ctl start`s a server on a free port of 127.0.0.1, with trust
//! authentication for the `postgres` role and durability turned off for speed.
//! Tests normally share one cluster per test process ([`shared`]) and take a
//! fresh database each ([`PgCluster::create_database`]); a test that stops
//! and restarts the server to watch Keyport lose and regain its database
//! starts a private cluster instead.
//!
//! Binaries: `$KEYPORT_PG_BIN` if set, else the newest
//! `/usr/lib/postgresql/<version>/bin`, else the first directory on `PATH`
//! with `pg_ctl`, `initdb` and `psql`.
//!
//! Root: `initdb` and `postgres` refuse to run as root, and tests (and CI) do
//! run as root. Then the temporary directory is handed to the `postgres` OS
//! user and the server binaries run through `runuser -u postgres --`. `psql`
//! has no such rule and connects over TCP as the current user.
//!
//! Cleanup: each cluster spawns a watchdog, a `/bin/sh` in its own process
//! group that blocks reading a pipe whose only writer is the test process.
//! When the pipe closes — on [`Drop`], on a normal exit, on a panic, on
//! `abort` or on `SIGKILL` alike, since the kernel closes the descriptors of a
//! dead process — the watchdog runs `pg_ctl -m immediate stop` and removes the
//! directory. So the [`shared`] cluster, which lives in a static and is never
//! dropped, still dies with the test process, and no test binary needs to
//! call a shutdown hook. Its own process group keeps the watchdog alive
//! through the Ctrl-C that kills the tests, and `pg_ctl` already puts the
//! server in a session of its own.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

/// OS user that owns the cluster when the tests run as root.
const OS_USER: &str = "postgres";
/// Superuser role created by `initdb`; trusted without a password.
const SUPERUSER: &str = "postgres";
/// How many free ports to try when another process takes the chosen one
/// between probing and the server binding it.
const PORT_ATTEMPTS: usize = 5;
/// Seconds `pg_ctl` waits for a start or stop to complete.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How much of the end of the server log goes into an error message.
const LOG_TAIL_BYTES: u64 = 8 * 1024;
/// Script of the watchdog: block until the test process closes the pipe on
/// stdin (or dies), then run the stop command given as arguments and remove
/// the cluster directory. INT and HUP are ignored so that a Ctrl-C that kills
/// the tests does not also kill their cleanup.
const WATCHDOG_SCRIPT: &str = r#"trap '' INT HUP
read -r _ignored
"$@" >/dev/null 2>&1
rm -rf -- "$KEYPORT_PG_CLUSTER_DIR"
"#;

/// A PostgreSQL server in a temporary directory, listening on 127.0.0.1.
///
/// Dropping it stops the server (`pg_ctl -m immediate stop`) and removes the
/// directory; a cluster that is never dropped is cleaned up when the test
/// process exits (see the [module docs](self)).
#[derive(Debug)]
pub struct PgCluster {
    bin: PgBin,
    /// `runuser -u postgres --` when running as root, `None` otherwise.
    runuser: Option<PathBuf>,
    dir: TempDir,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: AtomicU16,
    /// Serialises start, stop and restart of this cluster.
    control: Mutex<()>,
    watchdog: Mutex<Option<Watchdog>>,
}

impl PgCluster {
    /// Initialises a new cluster in a temporary directory and starts its server
    /// on a free port of 127.0.0.1.
    ///
    /// Takes about a second (`initdb` dominates). Fails with the output of
    /// the failing command and the end of the server log.
    pub fn start() -> io::Result<PgCluster> {
        let bin = PgBin::find()?;
        let runuser = if effective_uid()? == 0 { Some(runuser_for_postgres()?) } else { None };
        let dir = tempfile::Builder::new()
            .prefix("keyport-pg-")
            .tempdir()
            .map_err(|e| annotate(e, "could not create a temporary directory for PostgreSQL"))?;
        if runuser.is_some() {
            // The tempdir is created 0700; handing it to postgres lets initdb
            // and the server write in it while root can still read the log.
            run(
                Command::new("chown").arg("-R").arg(format!("{OS_USER}:")).arg(dir.path()),
                "chown of the PostgreSQL directory",
            )?;
        }
        let data_dir = dir.path().join("data");
        let log_file = dir.path().join("log");
        let mut cluster = PgCluster {
            bin,
            runuser,
            dir,
            data_dir,
            log_file,
            port: AtomicU16::new(0),
            control: Mutex::new(()),
            watchdog: Mutex::new(None),
        };
        // From here on, dropping `cluster` (on any error below) cleans up.
        let watchdog = cluster.spawn_watchdog()?;
        *cluster.watchdog.get_mut().map_err(|_| poisoned())? = Some(watchdog);
        cluster.init_db()?;
        cluster.start_on_free_port()?;
        Ok(cluster)
    }

    /// Creates a fresh, empty database and returns its URL,
    /// `postgres://postgres@127.0.0.1:<port>/<name>`.
    ///
    /// The name is `name_hint` reduced to `[a-z0-9_]`, then the process id
    /// and a per-process counter, so concurrent tests (and concurrent test
    /// processes) never collide.
    pub fn create_database(&self, name_hint: &str) -> io::Result<String> {
        let name = unique_database_name(name_hint);
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.database_url(&name))
    }

    /// Runs `sql` with `psql` as the superuser and returns what it printed,
    /// unaligned and without headers (`psql -At`), e.g. `"1\n"` for `select 1`.
    ///
    /// `database` is a database name or a URL from
    /// [`create_database`](Self::create_database). The script stops at the
    /// first error, which becomes the returned error.
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let target = if database.contains("://") { database.to_owned() } else { self.database_url(database) };
        let output = run(
            base_command(&self.bin.psql, self.dir.path())
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
                .arg(&target)
                .arg("-c")
                .arg(sql),
            &format!("psql on {target}"),
        )?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// URL of database `name` on this cluster, as the superuser.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port())
    }

    /// TCP port the server listens on; the same across [`stop`](Self::stop)
    /// and [`start_again`](Self::start_again), so URLs stay valid.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Acquire)
    }

    /// Directory of the server's unix socket (`host=` for a socket connection).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (`pg_ctl -m fast stop`): open connections are
    /// terminated and new ones refused until [`start_again`](Self::start_again).
    ///
    /// Meant for a private cluster from [`start`](Self::start): stopping the
    /// [`shared`] one would break every other test using it.
    pub fn stop(&self) -> io::Result<()> {
        let _guard = self.control.lock().map_err(|_| poisoned())?;
        run(&mut self.pg_ctl(["-m", "fast", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "stop"]), "pg_ctl stop")
            .map_err(|e| self.with_log(e))?;
        Ok(())
    }

    /// Starts a [stopped](Self::stop) server again, on the same port and with
    /// the same data.
    pub fn start_again(&self) -> io::Result<()> {
        let _guard = self.control.lock().map_err(|_| poisoned())?;
        self.start_server()
    }

    /// Stops the server and starts it again: [`stop`](Self::stop) then
    /// [`start_again`](Self::start_again).
    pub fn restart(&self) -> io::Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Whether the server is running (`pg_ctl status`).
    pub fn is_running(&self) -> io::Result<bool> {
        let output = self.pg_ctl(["status"]).output().map_err(|e| annotate(e, "could not run pg_ctl status"))?;
        // pg_ctl status: 0 running, 3 not running, 4 no data directory.
        match output.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => Err(command_failed("pg_ctl status", &output)),
        }
    }

    /// A command that runs `program` as the postgres OS user when we are root.
    fn server_command(&self, program: &Path) -> Command {
        match &self.runuser {
            Some(runuser) => {
                let mut command = base_command(runuser, self.dir.path());
                command.args(["-u", OS_USER, "--"]).arg(program);
                command
            }
            None => base_command(program, self.dir.path()),
        }
    }

    fn pg_ctl<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.server_command(&self.bin.pg_ctl);
        command.arg("-D").arg(&self.data_dir).args(args);
        command
    }

    fn init_db(&self) -> io::Result<()> {
        let mut command = self.server_command(&self.bin.initdb);
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8"])
            .args(["--no-locale", "--no-sync"]);
        run(&mut command, "initdb").map_err(|e| {
            if self.runuser.is_some() {
                annotate(
                    e,
                    &format!(
                        "as root, initdb runs as the {OS_USER} OS user, who must be able \
                         to traverse {}; set TMPDIR to a directory it can reach",
                        self.dir.path().display()
                    ),
                )
            } else {
                e
            }
        })?;
        Ok(())
    }

    /// Picks a free port and starts the server on it, picking another if a
    /// different process takes the port before the server binds it.
    fn start_on_free_port(&self) -> io::Result<()> {
        let _guard = self.control.lock().map_err(|_| poisoned())?;
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            self.write_settings(port)?;
            self.port.store(port, Ordering::Release);
            // So that only this attempt's log decides whether to retry.
            let _ = fs::remove_file(&self.log_file);
            let result = self.start_server();
            let port_taken = result.is_err() && self.log_tail().contains("could not bind");
            if !port_taken || attempt == PORT_ATTEMPTS {
                return result;
            }
            attempt += 1;
        }
    }

    /// Appends the test settings to `postgresql.conf`, where they survive a
    /// restart; a later line wins, so a retry on another port appends again.
    fn write_settings(&self, port: u16) -> io::Result<()> {
        let socket_dir = self.dir.path().to_string_lossy().replace('\'', "''");
        let settings = format!(
            "\n# keyport tests: throwaway data, so no durability\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket_dir}'\n"
        );
        fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("postgresql.conf"))
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(|e| annotate(e, "could not write postgresql.conf"))
    }

    fn start_server(&self) -> io::Result<()> {
        let mut command = self.pg_ctl(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "-l"]);
        command.arg(&self.log_file).arg("start");
        run(&mut command, &format!("pg_ctl start on port {}", self.port())).map_err(|e| self.with_log(e))?;
        Ok(())
    }

    fn spawn_watchdog(&self) -> io::Result<Watchdog> {
        let stop = self.pg_ctl(["-m", "immediate", "-w", "-s", "stop"]);
        let mut command = base_command(Path::new("/bin/sh"), Path::new("/"));
        command
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("keyport-pg-watchdog")
            .arg(stop.get_program())
            .args(stop.get_args())
            .env("KEYPORT_PG_CLUSTER_DIR", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child =
            command.spawn().map_err(|e| annotate(e, "could not spawn the PostgreSQL watchdog (/bin/sh)"))?;
        match child.stdin.take() {
            Some(stdin) => Ok(Watchdog { child, stdin }),
            None => Err(io::Error::other("the PostgreSQL watchdog has no stdin")),
        }
    }

    /// Stops the server at once and removes the directory, through the
    /// watchdog when it is alive.
    fn shut_down(&mut self) {
        let watchdog = match self.watchdog.get_mut() {
            Ok(watchdog) => watchdog.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(Watchdog { mut child, stdin }) = watchdog
            && matches!(child.try_wait(), Ok(None))
        {
            // Closing the pipe is the signal; waiting makes the cleanup done
            // by the time drop returns.
            drop(stdin);
            if child.wait().is_ok() {
                return;
            }
        }
        let _ =
            self.pg_ctl(["-m", "immediate", "-w", "-s", "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        // The TempDir removes the directory after this.
    }

    fn with_log(&self, error: io::Error) -> io::Error {
        let tail = self.log_tail();
        if tail.is_empty() {
            return error;
        }
        io::Error::new(
            error.kind(),
            format!("{error}\n--- end of the server log {} ---\n{tail}", self.log_file.display()),
        )
    }

    fn log_tail(&self) -> String {
        let Ok(mut file) = fs::File::open(&self.log_file) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The cluster shared by all tests of this process, started on first use.
///
/// Every test takes its own database from it with
/// [`PgCluster::create_database`]. It is never dropped: its watchdog stops
/// the server and removes its directory when the process exits (see the
/// [module docs](self)). If it fails to start, every call returns that error.
pub fn shared() -> io::Result<&'static PgCluster> {
    static SHARED: OnceLock<Result<PgCluster, (io::ErrorKind, String)>> = OnceLock::new();
    match SHARED.get_or_init(|| PgCluster::start().map_err(|e| (e.kind(), e.to_string()))) {
        Ok(cluster) => Ok(cluster),
        Err((kind, message)) => {
            Err(io::Error::new(*kind, format!("the shared PostgreSQL cluster failed to start: {message}")))
        }
    }
}

/// The watchdog process of a cluster and the write end of its stdin pipe.
#[derive(Debug)]
struct Watchdog {
    child: Child,
    stdin: ChildStdin,
}

/// Paths of the PostgreSQL programs the harness runs.
#[derive(Debug)]
struct PgBin {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl PgBin {
    const PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "psql"];

    fn find() -> io::Result<PgBin> {
        if let Some(dir) = std::env::var_os("KEYPORT_PG_BIN").filter(|dir| !dir.is_empty()) {
            let dir = PathBuf::from(dir);
            return PgBin::in_dir(&dir).ok_or_else(|| {
                not_found(format!("KEYPORT_PG_BIN={} lacks one of {}", dir.display(), Self::PROGRAMS.join(", ")))
            });
        }
        if let Some(bin) = newest_debian_bin_dir().and_then(|dir| PgBin::in_dir(&dir)) {
            return Ok(bin);
        }
        // On PATH, psql may live apart from the server programs (Debian puts a
        // wrapper in /usr/bin and the server programs nowhere on PATH).
        let on_path = |program: &str| path_dirs().map(|dir| dir.join(program)).find(|path| path.is_file());
        let server_dir = path_dirs().find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
        match (server_dir, on_path("psql")) {
            (Some(dir), Some(psql)) => Ok(PgBin { initdb: dir.join("initdb"), pg_ctl: dir.join("pg_ctl"), psql }),
            _ => Err(not_found(format!(
                "no PostgreSQL server binaries: set KEYPORT_PG_BIN to a directory with {}, \
                 or install PostgreSQL (Debian: apt-get install postgresql)",
                Self::PROGRAMS.join(", ")
            ))),
        }
    }

    fn in_dir(dir: &Path) -> Option<PgBin> {
        let [initdb, pg_ctl, psql] = Self::PROGRAMS.map(|program| dir.join(program));
        [&initdb, &pg_ctl, &psql].iter().all(|path| path.is_file()).then_some(PgBin { initdb, pg_ctl, psql })
    }
}

/// The directories on `PATH`, in order.
fn path_dirs() -> impl Iterator<Item = PathBuf> {
    std::env::var_os("PATH").into_iter().flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
}

/// The highest-versioned `/usr/lib/postgresql/<version>/bin` with `pg_ctl`.
fn newest_debian_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> =
                entry.file_name().to_str()?.split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// A command with no `PG*` variables from our environment, which would
/// otherwise redirect `psql` or `pg_ctl` (PGHOST, PGDATA, PGOPTIONS, ...).
fn base_command(program: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"PG") {
            command.env_remove(key);
        }
    }
    // A cwd the postgres user can enter: ours may be under /root.
    command.current_dir(cwd).stdin(Stdio::null());
    command
}

/// Runs `command` to completion; a non-zero exit becomes an error that
/// carries its output.
fn run(command: &mut Command, what: &str) -> io::Result<Output> {
    let output = command
        .output()
        .map_err(|e| annotate(e, &format!("{what}: could not run {}", command.get_program().to_string_lossy())))?;
    if output.status.success() { Ok(output) } else { Err(command_failed(what, &output)) }
}

fn command_failed(what: &str, output: &Output) -> io::Error {
    let mut message = format!("{what} failed ({})", output.status);
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        if !text.trim().is_empty() {
            let _ = write!(message, "\n--- {name} ---\n{}", text.trim_end());
        }
    }
    io::Error::other(message)
}

/// The effective uid, from `/proc/self/status` (`Uid: real effective ...`),
/// else from `id -u`.
fn effective_uid() -> io::Result<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status")
        && let Some(euid) = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|euid| euid.parse().ok())
    {
        return Ok(euid);
    }
    let output = run(Command::new("id").arg("-u"), "id -u")?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| io::Error::other(format!("could not parse the output of id -u: {e}")))
}

/// `runuser`, after checking that the postgres OS user exists.
fn runuser_for_postgres() -> io::Result<PathBuf> {
    let known = Command::new("id")
        .arg("-u")
        .arg(OS_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if !known {
        return Err(not_found(format!(
            "running as root, but there is no '{OS_USER}' OS user to run PostgreSQL as \
             (initdb and postgres refuse to run as root): install the postgresql package, \
             which creates it, or run the tests as another user"
        )));
    }
    let candidates = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].map(PathBuf::from);
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .or_else(|| path_dirs().map(|dir| dir.join("runuser")).find(|path| path.is_file()))
        .ok_or_else(|| {
            not_found(
                "running as root, but runuser (util-linux) is missing: it is needed to \
                 run PostgreSQL as the postgres OS user"
                    .to_owned(),
            )
        })
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| annotate(e, "could not find a free port on 127.0.0.1"))?;
    Ok(listener.local_addr()?.port())
}

/// `<hint>_<pid>_<n>`: lower-case letters, digits and `_`, at most 63 bytes
/// (PostgreSQL's identifier limit), unique within and across processes.
fn unique_database_name(hint: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("_{}_{n}", std::process::id());
    let mut hint: String =
        hint.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !hint.starts_with(|c: char| c.is_ascii_lowercase()) {
        hint.insert_str(0, "db_");
    }
    hint.truncate(63 - suffix.len());
    hint + &suffix
}

fn annotate(error: io::Error, context: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{context}: {error}"))
}

fn not_found(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, message)
}

fn poisoned() -> io::Error {
    io::Error::other("a PostgreSQL cluster lock was poisoned by a panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select_one(cluster: &PgCluster, url: &str) -> io::Result<String> {
        cluster.psql(url, "select 1")
    }

    #[test]
    fn serves_fresh_databases_across_a_restart() {
        let cluster = PgCluster::start().unwrap();
        assert!(cluster.is_running().unwrap());
        let first = cluster.create_database("first test").unwrap();
        let second = cluster.create_database("first test").unwrap();
        assert_ne!(first, second);
        let prefix = format!("postgres://postgres@127.0.0.1:{}/", cluster.port());
        assert!(first.starts_with(&prefix), "{first}");
        for url in [&first, &second] {
            assert_eq!(select_one(&cluster, url).unwrap(), "1\n");
        }
        // The databases are distinct: a table in one is absent from the other.
        cluster.psql(&first, "create table only_here (id int)").unwrap();
        assert_eq!(
            cluster.psql(&second, "select count(*) from pg_tables where tablename = 'only_here'").unwrap(),
            "0\n"
        );

        cluster.stop().unwrap();
        assert!(!cluster.is_running().unwrap());
        let refused = select_one(&cluster, &first).unwrap_err().to_string();
        assert!(refused.contains("Connection refused"), "{refused}");

        cluster.start_again().unwrap();
        for url in [&first, &second] {
            assert_eq!(select_one(&cluster, url).unwrap(), "1\n");
        }
        assert_eq!(cluster.psql(&first, "select count(*) from only_here").unwrap(), "0\n");

        cluster.restart().unwrap();
        assert_eq!(select_one(&cluster, &second).unwrap(), "1\n");
        assert_eq!(cluster.psql("postgres", "show fsync").unwrap(), "off\n");

        let dir = cluster.socket_dir().to_owned();
        drop(cluster);
        assert!(!dir.exists(), "{} outlived the cluster", dir.display());
    }

    #[test]
    fn creates_databases_concurrently() {
        let cluster = shared().unwrap();
        let urls: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                (0..12).map(|_| scope.spawn(|| cluster.create_database("concurrent").unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = urls.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), urls.len());
        for url in &urls {
            assert_eq!(select_one(cluster, url).unwrap(), "1\n");
        }
        assert!(std::ptr::eq(cluster, shared().unwrap()));
    }

    #[test]
    fn database_names_are_valid_identifiers() {
        let long = "X".repeat(100);
        for hint in ["", "9lives", "Sign-Up: émoji 🎉", long.as_str()] {
            let name = unique_database_name(hint);
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{name}");
        }
    }
}
