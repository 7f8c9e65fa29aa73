//! A real PostgreSQL server for the tests: Debian's `postgresql` package
//! (`make test` installs it), a throw-away cluster in a temporary
//! directory on a free port, started once per test binary and stopped when
//! the binary exits. Each test gets its own database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use xiaoer::store::db::Conn;

/// Whether this run's servers use PostgreSQL (`XIAOER_TEST_STORAGE=postgres`).
pub fn selected() -> bool {
    std::env::var("XIAOER_TEST_STORAGE").is_ok_and(|v| v == "postgres")
}

/// The database standing for the SQLite file `db` in a test: the same path
/// is the same database, so a test that restarts a server finds its data.
pub fn database_for(db: &Path) -> String {
    static NAMES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap();
    names.entry(db.to_path_buf()).or_insert_with(new_database).clone()
}

/// A new, empty database; its URL.
pub fn new_database() -> String {
    static NEXT: Mutex<u32> = Mutex::new(0);
    let server = server();
    let n = {
        let mut next = NEXT.lock().unwrap();
        *next += 1;
        *next
    };
    let name = format!("t{n}");
    let admin = Conn::postgres(&server.url("postgres")).unwrap();
    admin.execute_batch(&format!("CREATE DATABASE {name}")).unwrap();
    server.url(&name)
}

struct PgServer {
    port: u16,
}

impl PgServer {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// The postmaster and its directory, for the exit handler.
static RUNNING: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);

fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> PgServer {
    let bin = bin_dir();
    remove_stale_clusters();
    let dir = std::env::temp_dir().join(format!("xiaoer-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let user = run_as();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    let data = dir.join("data");
    let out = as_user(Command::new(bin.join("initdb")), user)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .expect("initdb: install Debian's postgresql package (`make test` does)");
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    // Started from a thread of its own: the server gets SIGINT when its
    // parent thread ends (see `as_user`), i.e. with this process.
    let (tx, rx) = std::sync::mpsc::channel();
    let (bin_c, data_c, dir_c) = (bin.clone(), data.clone(), dir.clone());
    std::thread::spawn(move || {
        let mut child: Child = as_user(Command::new(bin_c.join("postgres")), user)
            .arg("-D")
            .arg(&data_c)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=300", "-k"])
            .arg(&dir_c)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir_c.join("postgres.log")).unwrap())
            .spawn()
            .expect("starting postgres");
        tx.send(child.id()).unwrap();
        // This thread lives as long as the server (or the process).
        let _ = child.wait();
    });
    let pid = rx.recv().unwrap();
    *RUNNING.lock().unwrap() = Some((pid, dir.clone()));
    unsafe { libc::atexit(stop_at_exit) };
    let server = PgServer { port };
    let started = Instant::now();
    while Conn::postgres(&server.url("postgres")).is_err() {
        let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(30), "postgres did not start: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

extern "C" fn stop_at_exit() {
    if let Some((pid, dir)) = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take() {
        // Immediate shutdown: the cluster is thrown away.
        unsafe { libc::kill(pid as i32, libc::SIGQUIT) };
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Clusters left by test binaries that died without their exit handler.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("xiaoer-pg-")
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The newest installed PostgreSQL's programs (or `XIAOER_PG_BIN`).
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("XIAOER_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql: install Debian's postgresql package (`make test` does)")
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL with initdb under /usr/lib/postgresql").1
}

/// PostgreSQL refuses to run as root: then it runs as the `postgres` user.
fn run_as() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "running as root needs the `postgres` user (Debian's postgresql package makes it)");
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// `cmd` as `user` (when root), dying with this process's thread that started it.
fn as_user(mut cmd: Command, user: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = user
                && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // After the user change, which would clear it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            Ok(())
        });
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
