//! Test harness: a JetStream cluster of real `nats-server` processes on 127.0.0.1.
//!
//! [`NatsCluster::start`] picks free client and cluster ports, writes one config file and
//! store dir per server under a temp dir, starts the servers and waits until JetStream has a
//! meta leader and an R=`n` stream can be created. Servers can be killed (`SIGKILL`),
//! stopped (`SIGTERM`) and restarted on the same ports and store; everything is killed and
//! removed on drop. Compiled always, so black-box tests and examples can use it.
//!
//! A test that needs the cluster calls [`cluster_or_skip`]: when `nats-server` is missing it
//! fails, unless `PHOENIX_SKIP_NATS=1` asks to skip — then it says so loudly on stderr.
//! One cluster runs per process at a time (a lock held by [`NatsCluster`]): on two shared
//! cores, parallel clusters would starve each other's leader elections.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::bridge::Bridge;
use super::error::ClusterError;

/// How long a start or restart may take before the harness gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// Why the harness could not provide a cluster.
#[derive(Debug, Error)]
pub enum HarnessError {
    #[error("nats-server not found (install Debian's nats-server, or set PHOENIX_NATS_SERVER)")]
    NotInstalled,
    #[error("harness I/O")]
    Io(#[from] std::io::Error),
    #[error("cluster not ready after {after:?}")]
    NotReady {
        after: Duration,
        #[source]
        last: ClusterError,
    },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// The `nats-server` binary: `$PHOENIX_NATS_SERVER` when set (`None` if that is no file),
/// else the first on `PATH` or in the usual system directories (Debian installs it in
/// `/usr/sbin`).
pub fn nats_server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PHOENIX_NATS_SERVER") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// A running 3-server cluster, or `None` when the caller asked to skip without nats-server.
///
/// # Panics
/// When nats-server is missing and `PHOENIX_SKIP_NATS=1` is not set, or the cluster does not
/// come up: a test must never pass without having run.
pub fn cluster_or_skip(test: &str) -> Option<NatsCluster> {
    if nats_server_binary().is_none() && std::env::var("PHOENIX_SKIP_NATS").as_deref() == Ok("1") {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!!! SKIPPED {test}: nats-server is missing and PHOENIX_SKIP_NATS=1 !!!!"
        );
        return None;
    }
    match NatsCluster::start(3) {
        Ok(c) => Some(c),
        Err(e) => {
            panic!("{test}: no NATS cluster: {e} (set PHOENIX_SKIP_NATS=1 to skip on purpose)")
        }
    }
}

/// One server of the cluster.
struct Server {
    name: String,
    config: PathBuf,
    client_port: u16,
    child: Option<Child>,
}

/// Real nats-servers forming one JetStream cluster; see the module doc.
pub struct NatsCluster {
    servers: Vec<Server>,
    bin: PathBuf,
    dir: tempfile::TempDir,
    bridge: Bridge,
    _one: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCluster")
            .field("urls", &self.urls())
            .finish()
    }
}

impl NatsCluster {
    /// Start `n` servers and wait until JetStream can place an R=`n` stream.
    pub fn start(n: usize) -> Result<NatsCluster, HarnessError> {
        let bin = nats_server_binary().ok_or(HarnessError::NotInstalled)?;
        let one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::Builder::new().prefix("phoenix-nats-").tempdir()?;
        let ports = free_ports(2 * n)?;
        let (client, route) = ports.split_at(n);
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("s{}", i + 1);
            let routes: Vec<String> = route
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("\"nats-route://127.0.0.1:{p}\""))
                .collect();
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: \"{name}\"\nlisten: \"127.0.0.1:{}\"\n\
                     log_file: \"{}\"\n\
                     jetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 2GB }}\n\
                     cluster {{ name: \"phoenix\", listen: \"127.0.0.1:{}\", routes: [{}] }}\n",
                    client[i],
                    dir.path().join(format!("{name}.log")).display(),
                    store.display(),
                    route[i],
                    routes.join(", ")
                ),
            )?;
            servers.push(Server {
                name,
                config,
                client_port: client[i],
                child: None,
            });
        }
        let mut cluster = NatsCluster {
            servers,
            bin,
            dir,
            bridge: Bridge::new("phoenix-nats-harness", 1)?,
            _one: one,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        cluster.wait_ready(READY_TIMEOUT)?;
        Ok(cluster)
    }

    /// Client URLs of every server, running or not.
    pub fn urls(&self) -> Vec<String> {
        (0..self.servers.len()).map(|i| self.url(i)).collect()
    }

    /// Client URL of server `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// The index of the server named `name` (`s1`, `s2` …, as JetStream reports leaders).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// Where the servers keep their logs and stores.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `kill -9` server `i`.
    pub fn kill(&mut self, i: usize) -> Result<(), HarnessError> {
        if let Some(mut c) = self.servers[i].child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Stop server `i` with `SIGTERM` (then `SIGKILL` if it lingers for 10 s).
    pub fn stop(&mut self, i: usize) -> Result<(), HarnessError> {
        let Some(mut c) = self.servers[i].child.take() else {
            return Ok(());
        };
        let pid = i32::try_from(c.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            rustix::process::kill_process(pid, rustix::process::Signal::TERM)
                .map_err(std::io::Error::from)?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.try_wait()?.is_none() {
            if Instant::now() > deadline {
                c.kill()?;
                c.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Start server `i` again (same ports, same store) and wait until it serves JetStream.
    pub fn restart(&mut self, i: usize) -> Result<(), HarnessError> {
        self.kill(i)?;
        self.spawn(i)?;
        let url = self.url(i);
        self.poll(READY_TIMEOUT, move || account_info(url.clone()))
    }

    /// Wait until every running server sees a JetStream meta leader and an R=`n` stream
    /// can be created (all peers are current).
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), HarnessError> {
        for (i, s) in self.servers.iter().enumerate() {
            if s.child.is_some() {
                let url = self.url(i);
                self.poll(timeout, move || account_info(url.clone()))?;
            }
        }
        let urls = self.urls();
        let replicas = self.servers.len();
        self.poll(timeout, move || probe_stream(urls.clone(), replicas))
    }

    fn spawn(&mut self, i: usize) -> Result<(), HarnessError> {
        let s = &mut self.servers[i];
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&s.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        tracing::debug!(server = %s.name, pid = child.id(), "nats-server started");
        s.child = Some(child);
        Ok(())
    }

    /// Run `check` on the harness runtime every 200 ms until it succeeds or `timeout`.
    fn poll<F, Fut>(&self, timeout: Duration, check: F) -> Result<(), HarnessError>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), ClusterError>> + Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.bridge.run(check())? {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(HarnessError::NotReady {
                    after: timeout,
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(mut c) = s.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// `n` distinct free TCP ports on 127.0.0.1 (held together while picked, then released).
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

async fn connect(urls: Vec<String>) -> Result<async_nats::Client, ClusterError> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(2)))
        .connect(urls)
        .await
        .map_err(ClusterError::Connect)
}

/// The server at `url` answers a JetStream account-info request (it knows a meta leader).
async fn account_info(url: String) -> Result<(), ClusterError> {
    let js = async_nats::jetstream::new(connect(vec![url]).await?);
    super::log::jetstream_ready(&js).await
}

/// An R=`replicas` stream can be created, gets a leader that accepts a publish, and is
/// deleted again.
async fn probe_stream(urls: Vec<String>, replicas: usize) -> Result<(), ClusterError> {
    use async_nats::jetstream::stream::Config;
    let js = async_nats::jetstream::new(connect(urls).await?);
    let name = "PHOENIX_HARNESS_PROBE";
    let made = js
        .create_stream(Config {
            name: name.into(),
            subjects: vec!["phoenix.harness.probe".into()],
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::api("probe stream", e));
    let published = match made {
        Ok(_) => match js.publish("phoenix.harness.probe", "x".into()).await {
            Ok(ack) => ack
                .await
                .map(|_| ())
                .map_err(|e| ClusterError::api("probe ack", e)),
            Err(e) => Err(ClusterError::api("probe publish", e)),
        },
        Err(e) => Err(e),
    };
    let _ = js.delete_stream(name).await;
    published
}
