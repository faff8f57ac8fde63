//! Shared helpers of the integration tests: a test image built FROM scratch, containers that clean
//! up after themselves, a `plimsoll` process on a free port, and a minimal HTTP client.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod chromium;
pub mod otel;
pub mod swarm;

/// The image every test container runs: busybox (static, from Debian's busybox-static) on scratch.
pub const IMAGE: &str = "plimsoll-test-busybox:1";

/// A busybox `sh -c` script that burns CPU while /ctl/on exists and idles otherwise, so that a test
/// switches the load from the host by creating or removing that file in a folder mounted at /ctl.
pub const BURNER: &str = "while :; do if [ -e /ctl/on ]; then i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; else sleep 0.2; fi; done";

/// Milliseconds since the Unix epoch, the clock of the `at` field of decision records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running the docker CLI")
}

/// Runs docker and panics with its stderr on failure; returns trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds the test image once per test binary. No registry is reachable, so it is made from the
/// host's static busybox.
pub fn ensure_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "/bin/busybox is missing: apt-get install busybox-static (.ci/run does)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(busybox, dir.path().join("busybox")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"sleep\", \"100000\"]\nSTOPSIGNAL SIGKILL\n",
        )
        .unwrap();
        let out = Command::new("docker")
            .args(["build", "-q", "-t", IMAGE])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(out.status.success(), "docker build: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// A container removed when dropped.
pub struct Container {
    pub name: String,
    pub id: String,
}

impl Container {
    /// `docker run -d --name NAME [flags] IMAGE [cmd]`.
    pub fn run(name: &str, flags: &[&str], cmd: &[&str]) -> Container {
        ensure_image();
        let _ = docker(&["rm", "-f", name]);
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(flags);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        let id = docker_ok(&args);
        Container {
            name: name.to_string(),
            id,
        }
    }

    /// `docker exec` of a busybox applet (the image has no applet links).
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", self.name.as_str(), "/bin/busybox"];
        args.extend_from_slice(cmd);
        docker(&args)
    }

    /// [`Container::exec`] that panics with its stderr unless the command succeeds.
    pub fn exec_ok(&self, cmd: &[&str]) {
        let out = self.exec(cmd);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// A user-defined network, removed when dropped (declare it before the containers on it).
pub struct Network {
    pub name: String,
}

impl Network {
    pub fn create(prefix: &str) -> Network {
        let name = unique(prefix);
        let _ = docker(&["network", "rm", &name]);
        docker_ok(&["network", "create", &name]);
        Network { name }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}

/// A unique name per test run, so parallel runs and leftovers do not collide.
pub fn unique(prefix: &str) -> String {
    format!("plimsoll-it-{prefix}-{}", std::process::id())
}

pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A loopback UDP address no socket holds right now (for receivers under test).
pub fn free_udp_addr() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

/// The value of the sample of `name` whose labels include `labels` in a Prometheus text exposition.
pub fn metric_value(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let has = |(k, v): &(&str, &str)| label_text.contains(&format!("{k}=\"{v}\""));
        labels
            .iter()
            .all(has)
            .then(|| value.split_whitespace().next()?.parse().ok())?
    })
}

/// The value of the exposition line that starts with `series` (name and labels as rendered, in
/// order).
pub fn series_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

pub fn plimsoll_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_plimsoll"))
}

/// An image FROM scratch holding the `plimsoll` binary under test and the shared libraries `ldd`
/// names for it (no registry is reachable, and the test binary is not static).
pub fn build_plimsoll_image(tag: &str) {
    let bin = plimsoll_bin();
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path().join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&bin, root.join("plimsoll")).unwrap();
    // Debug info is most of the test binary: without it the image loads into extra Swarm nodes in
    // seconds.
    let _ = Command::new("strip")
        .arg("--strip-debug")
        .arg(root.join("plimsoll"))
        .status();
    let ldd = Command::new("ldd").arg(&bin).output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = line
            .split("=>")
            .last()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap_or("");
        if path.starts_with('/') {
            let dest = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(path, &dest).unwrap();
        }
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/plimsoll\"]\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(ctx.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `plimsoll` process killed when dropped; its stderr goes to a file for assertions.
pub struct Plimsoll {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Plimsoll {
    /// Starts `plimsoll run --listen ADDR --policies POLICIES ARGS...` (see [`Plimsoll::start`]).
    pub fn run(policies: &Path, args: &[&str]) -> Plimsoll {
        let mut all = vec!["--policies", policies.to_str().unwrap()];
        all.extend_from_slice(args);
        Plimsoll::start("run", &all)
    }

    /// Starts `plimsoll SUBCOMMAND --listen ADDR ARGS...` and waits until /healthz answers 200.
    /// Receivers on fixed ports (OTLP, StatsD) are turned off unless ARGS set their address, so that
    /// tests can run side by side.
    pub fn start(subcommand: &str, args: &[&str]) -> Plimsoll {
        Plimsoll::start_at(free_addr(), subcommand, args)
    }

    /// [`Plimsoll::start`] listening on `addr` (known before the start, e.g. to give it to peers).
    pub fn start_at(addr: SocketAddr, subcommand: &str, args: &[&str]) -> Plimsoll {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("plimsoll.log");
        let mut receivers_off = Vec::new();
        for flag in ["--otlp-grpc", "--otlp-http", "--statsd-udp"] {
            if !args.contains(&flag) {
                receivers_off.extend([flag, "off"]);
            }
        }
        let child = Command::new(plimsoll_bin())
            .arg(subcommand)
            .args(["--listen", &addr.to_string()])
            .args(&receivers_off)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("RUST_LOG", "info")
            .spawn()
            .expect("starting plimsoll");
        let p = Plimsoll {
            child,
            addr,
            log,
            _dir: dir,
        };
        p.wait_for("healthy", Duration::from_secs(20), |p| {
            p.get("/healthz").is_ok_and(|(code, _)| code == 200)
        });
        p
    }

    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.addr, path)
    }

    /// GET that must answer 200 with JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `cond` every 200 ms until it holds; panics with the log after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let decisions = self
            .get("/api/v1/decisions")
            .map(|(_, b)| b)
            .unwrap_or_default();
        panic!(
            "timed out after {timeout:?} waiting for {what}; plimsoll log:\n{}\ndecisions: {decisions}",
            self.logs()
        );
    }

    /// The entries of /api/v1/policies: one a scaled service, with its policy, target and origin.
    pub fn policies(&self) -> Vec<serde_json::Value> {
        self.json("/api/v1/policies").as_array().unwrap().clone()
    }

    /// Waits until /api/v1/policies lists a policy for the Swarm service `service`.
    pub fn wait_for_policy(&self, service: &str, timeout: Duration) {
        self.wait_for(&format!("the policy of {service}"), timeout, |p| {
            p.policies()
                .iter()
                .any(|e| e["policy"]["service"] == service)
        });
    }

    /// The decision records of /api/v1/decisions?service=SERVICE, oldest first.
    pub fn decisions(&self, service: &str) -> Vec<serde_json::Value> {
        self.json(&format!("/api/v1/decisions?service={service}"))
            .as_array()
            .unwrap()
            .clone()
    }

    /// The first decision record at or after `since_ms` that scaled `service` up (or down).
    pub fn first_scale(&self, service: &str, up: bool, since_ms: i64) -> Option<serde_json::Value> {
        self.decisions(service).into_iter().find(|r| {
            r["action"] == "scaled"
                && r["at"].as_i64() >= Some(since_ms)
                && (r["desired"].as_u64() > r["current"].as_u64()) == up
        })
    }

    /// The entry of /api/v1/containers with this name, if tracked.
    pub fn container(&self, name: &str) -> Option<serde_json::Value> {
        self.json("/api/v1/containers")
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }
}

impl Drop for Plimsoll {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET (tests only): status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[], "")
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Makes this engine a single-node Swarm manager if it is not in a swarm yet. It advertises 127.0.0.1:
/// the extra nodes of the multi-node tests (`swarm.rs`) reach it through a DNAT in their namespaces.
pub fn ensure_swarm() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state != "active" {
            docker_ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
    });
}

/// The Swarm node ID of this engine.
pub fn local_node_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        ensure_swarm();
        docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"])
    })
    .clone()
}

/// The gateway address of docker_gwbridge: where a Swarm task on an overlay network reaches this
/// host (its default route), e.g. a receiver listening on every address.
pub fn gwbridge_gateway() -> String {
    ensure_swarm();
    docker_ok(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
    ])
}

/// An overlay network of the swarm, removed when dropped (after the services on it, which take a
/// moment to go, so it is retried for up to 30 s).
pub struct Overlay(pub String);

impl Overlay {
    pub fn create(prefix: &str) -> Overlay {
        ensure_swarm();
        let name = unique(prefix);
        docker_ok(&["network", "create", "-d", "overlay", &name]);
        Overlay(name)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        for _ in 0..120 {
            if docker(&["network", "rm", &self.0]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A Swarm service of the test image, removed when dropped.
pub struct Service {
    pub name: String,
}

impl Service {
    /// `docker service create --detach --replicas N --name NAME [flags] IMAGE sleep 100000`.
    pub fn create(name: &str, replicas: u32, flags: &[&str]) -> Service {
        Service::create_cmd(name, replicas, flags, &["sleep", "100000"])
    }

    /// A service of the test image running a busybox command.
    pub fn create_cmd(name: &str, replicas: u32, flags: &[&str], cmd: &[&str]) -> Service {
        ensure_image();
        let replicas = replicas.to_string();
        let mut all = vec!["--replicas", replicas.as_str()];
        all.extend_from_slice(flags);
        Service::create_with_image(name, IMAGE, &all, cmd)
    }

    /// `docker service create --detach --name NAME [flags] IMAGE [cmd]` for an image already built
    /// on this engine, constrained to this engine's node: while a multi-node test has extra nodes in
    /// the swarm (tests/support/swarm.rs), Swarm would otherwise place tasks on them too.
    pub fn create_with_image(name: &str, image: &str, flags: &[&str], cmd: &[&str]) -> Service {
        let local = format!("node.id=={}", local_node_id());
        let mut all = vec!["--constraint", local.as_str()];
        all.extend_from_slice(flags);
        Service::create_placed(name, image, &all, cmd)
    }

    /// `docker service create --detach --name NAME [flags] IMAGE [cmd]` with no placement of its own:
    /// `flags` must say where (the multi-node tests constrain to their pool's label).
    pub fn create_placed(name: &str, image: &str, flags: &[&str], cmd: &[&str]) -> Service {
        ensure_swarm();
        let _ = docker(&["service", "rm", name]);
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            name,
            "--stop-grace-period",
            "1s",
        ];
        args.extend_from_slice(flags);
        args.push(image);
        args.extend_from_slice(cmd);
        docker_ok(&args);
        Service {
            name: name.to_string(),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = docker(&["service", "rm", &self.name]);
    }
}

/// Replicas the spec of Swarm service `service` asks for (`docker service inspect`).
pub fn replicas(service: &str) -> u32 {
    docker_ok(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
        service,
    ])
    .parse()
    .unwrap()
}

/// Tasks of Swarm service `service` that are meant to run and do (`docker service ps`).
pub fn running_tasks(service: &str) -> u32 {
    docker_ok(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
        service,
    ])
    .lines()
    .filter(|l| l.starts_with("Running"))
    .count() as u32
}

/// A one-replica Swarm service running [`BURNER`] under a CPU limit, with the host folder mounted
/// at /ctl that switches its load; both removed when dropped.
pub struct BurnerService {
    pub service: Service,
    ctl: tempfile::TempDir,
}

impl BurnerService {
    /// `limit_cpu` is `--limit-cpu`; `load` switches the load on before the service starts.
    pub fn create(name: &str, limit_cpu: &str, load: bool) -> BurnerService {
        BurnerService::create_with(name, limit_cpu, load, &[])
    }

    /// As [`BurnerService::create`], with extra `docker service create` flags.
    pub fn create_with(name: &str, limit_cpu: &str, load: bool, flags: &[&str]) -> BurnerService {
        let ctl = tempfile::tempdir().unwrap();
        if load {
            std::fs::write(ctl.path().join("on"), "").unwrap();
        }
        let mount = format!("type=bind,src={},dst=/ctl", ctl.path().display());
        let mut all = vec!["--limit-cpu", limit_cpu, "--mount", &mount];
        all.extend_from_slice(flags);
        let service = Service::create_cmd(name, 1, &all, &["sh", "-c", BURNER]);
        BurnerService { service, ctl }
    }

    pub fn name(&self) -> &str {
        &self.service.name
    }

    /// Switches the load on (creates /ctl/on) or off (removes it).
    pub fn set_load(&self, on: bool) {
        let switch = self.ctl.path().join("on");
        if on {
            std::fs::write(switch, "").unwrap();
        } else {
            std::fs::remove_file(switch).unwrap();
        }
    }
}

/// A fresh folder holding one policy file with `yaml`, for `plimsoll run --policies`.
pub fn policy_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), yaml).unwrap();
    dir
}

/// A policy folder for the Swarm scaling tests and the reaction bench: `service` at 1 to 3 replicas
/// on 50% CPU, scaling down within 5 s of the load stopping.
pub fn cpu_policy_dir(service: &str) -> tempfile::TempDir {
    policy_dir(&format!("service: {service}\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\nbehavior:\n  scale_down: {{ stabilization: 5s, select: max, policies: [ {{ percent: 100, period: 5s }} ] }}\n"))
}

/// A unix-socket proxy in front of the Docker engine that a test can cut and restore, to make the
/// engine unreachable for a while without stopping it for everyone else.
pub struct DockerProxy {
    pub socket: PathBuf,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    _dir: tempfile::TempDir,
}

impl DockerProxy {
    pub fn start() -> DockerProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let mut c = conns2.lock().unwrap();
                c.push(client.try_clone().unwrap());
                c.push(engine.try_clone().unwrap());
                drop(c);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), engine.try_clone().unwrap()),
                    (engine, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        DockerProxy {
            socket,
            up,
            conns,
            _dir: dir,
        }
    }

    /// Cutting also closes every open connection, as an engine restart would.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// (name, state, managed) of every container labelled with Compose project `project`.
pub fn compose_members(project: &str) -> Vec<(String, String, bool)> {
    let out = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}}\t{{.State}}\t{{.Label \"plimsoll.managed\"}}",
    ]);
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f.get(2) == Some(&"true"),
            )
        })
        .collect()
}

/// Removes every container of a Compose project, managed clones included, when dropped.
pub struct ProjectCleanup(pub String);

impl Drop for ProjectCleanup {
    fn drop(&mut self) {
        // Again until none is left (bounded): a scale-up in flight when the members were listed
        // can start one more replica, which would keep the project (and its target) alive.
        for _ in 0..20 {
            let members = compose_members(&self.0);
            if members.is_empty() {
                break;
            }
            for (name, _, _) in members {
                let _ = docker(&["rm", "-f", &name]);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// A replica of Compose service `service` of `project` (number `number`) running [`BURNER`] under
/// `--cpus cpus`, its load switched by `ctl`/on; extra `docker run` flags in `flags`.
pub fn compose_burner(
    project: &str,
    service: &str,
    number: u32,
    cpus: &str,
    ctl: &Path,
    flags: &[&str],
) -> Container {
    compose_script(project, service, number, cpus, ctl, flags, BURNER)
}

/// As [`compose_burner`], running the busybox `sh -c` script `script` instead.
pub fn compose_script(
    project: &str,
    service: &str,
    number: u32,
    cpus: &str,
    ctl: &Path,
    flags: &[&str],
    script: &str,
) -> Container {
    let labels = [
        format!("com.docker.compose.project={project}"),
        format!("com.docker.compose.service={service}"),
        format!("com.docker.compose.container-number={number}"),
    ];
    let volume = format!("{}:/ctl", ctl.display());
    let mut all = vec!["--cpus", cpus, "-v", &volume];
    for l in &labels {
        all.extend_from_slice(&["--label", l]);
    }
    all.extend_from_slice(flags);
    Container::run(
        &format!("{project}-{service}-{number}"),
        &all,
        &["sh", "-c", script],
    )
}

/// A real Prometheus server (Debian's package) on a free port, with its own data folder, stopped when
/// dropped.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second.
    pub fn start(target: SocketAddr) -> Prometheus {
        Prometheus::start_config(&format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: plimsoll\n    static_configs:\n      - targets: ['{target}']\n"))
    }

    /// Runs with this prometheus.yml (written to its folder; relative paths in it are relative to that
    /// folder) and waits until /-/ready answers 200.
    pub fn start_config(config: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let addr = free_addr();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package prometheus) must be installed; tests/setup.sh installs it");
        let p = Prometheus { child, addr, dir };
        let start = Instant::now();
        while http_get(p.addr, "/-/ready").map(|(c, _)| c).ok() != Some(200) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prometheus did not become ready: {}",
                p.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        p
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `cond` every half second until it holds; fails with Prometheus' log after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; prometheus log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// GET of an API path with URL-encoded query parameters; the `data` of a successful answer.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<serde_json::Value, String> {
        let url = reqwest::Url::parse_with_params(&format!("http://{}{path}", self.addr), params)
            .map_err(|e| e.to_string())?;
        let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let (code, body) = http_get(self.addr, &target).map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {code}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {code}: {}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's node_exporter (package prometheus-node-exporter) on a free port with its default
/// collectors, stopped when dropped.
pub struct NodeExporter {
    child: Child,
    pub addr: SocketAddr,
}

impl NodeExporter {
    pub fn start() -> NodeExporter {
        let addr = free_addr();
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter (Debian package) must be installed; tests/setup.sh installs it");
        NodeExporter { child, addr }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scale actions of a service whose one replica failed its health check under load (HPA
/// #64088): the first scaled from 1 because every replica was unready, on its CPU metric, and none
/// went past `max`. Shared by the Swarm and Compose tests of the rule.
pub fn assert_scaled_up_as_all_replicas_unready(scaled: &[serde_json::Value], max: u64) {
    let first = &scaled[0];
    assert_eq!(first["reason"], "all_replicas_unready", "{scaled:?}");
    assert_eq!(first["current"], 1, "{first}");
    let cpu = &first["metrics"][0];
    assert_eq!(cpu["status"], "all_replicas_unready", "{first}");
    assert!(
        scaled.iter().all(|r| r["desired"].as_u64() <= Some(max)),
        "max holds: {scaled:?}"
    );
}
