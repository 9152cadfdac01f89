//! A real `redis-server` on a free loopback port, for tests and the load generator: not a fake,
//! the server operators run (Debian's package; `.ci/run` installs it when it is missing).
//! Nothing is saved to disk, and the process is killed when the handle is dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    addr: SocketAddr,
    binary: String,
}

impl RedisServer {
    /// Starts `redis-server` (`REDIS_SERVER` names another binary) on a free loopback port and
    /// waits until it answers `PING`.
    pub fn start() -> std::io::Result<RedisServer> {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string());
        let port = free_port()?;
        let mut server = RedisServer { child: None, addr: SocketAddr::from(([127, 0, 0, 1], port)), binary };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port", &self.addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start {} ({e}): install Redis (Debian: apt-get install redis-server) or set REDIS_SERVER",
                        self.binary
                    ),
                )
            })?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if ping(self.addr) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(std::io::Error::other(format!("redis-server exited at start: {status}")));
                }
            }
            if started.elapsed() > START_DEADLINE {
                return Err(std::io::Error::other("redis-server did not answer PING within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Commands the server has processed since it started (`INFO stats`), for round trips per
    /// ticket in the load generator.
    pub fn commands_processed(&self) -> Option<u64> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        stream.write_all(b"INFO stats\r\n").ok()?;
        let mut reader = BufReader::new(&mut stream);
        let mut line = String::new();
        // `$<len>` then the text, line by line.
        reader.read_line(&mut line).ok()?;
        loop {
            line.clear();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(n) = line.trim().strip_prefix("total_commands_processed:") {
                return n.parse().ok();
            }
        }
    }

    /// Kills the server (as a crash would: no shutdown, nothing saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ports below Linux's ephemeral range (32768–60999 by default), where no client socket takes
/// its local port: a client reconnecting to a killed server's port in that range can pick the
/// same port as its own and connect to itself (TCP simultaneous open), reading its own command
/// back as the reply.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port in [`PORTS`] that is free now: free unless another test takes it in the next
/// moment (then the start fails loudly, not silently).
fn free_port() -> std::io::Result<u16> {
    for _ in 0..200 {
        let port = PORTS.start + fastrand::u16(..PORTS.end - PORTS.start);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free loopback port for redis-server in 20000-31999"))
}

/// One `PING` over RESP, answered `+PONG`.
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(&mut stream);
    reader.read_line(&mut line).is_ok() && line.starts_with("+PONG")
}
