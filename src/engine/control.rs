//! Operator commands from another terminal: `ferry abort web-1` in a second ssh session reaches
//! the ferry process that runs web-1's migration through a Unix socket, so the command goes
//! through that process's engine (which knows whether the migration is in post-copy, whether
//! post-copy was permitted, and resumes a guest it paused) instead of around it.
//!
//! One socket per migrating instance, `$XDG_STATE_HOME/ferry/control/<instance>.sock`, mode
//! 0600 in a 0700 directory: only the operator's own account can steer its migrations. The
//! protocol is one JSON line each way: the command, then the engine's answer.
//!
//! Each socket is served by a std thread of its own, never a runtime worker: its accept loop
//! sleeps between looks at a stop flag, and its handler waits (bounded) for the engine's answer.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::live::{CommandReply, OperatorCommand};

/// Carries out one command and answers it (the engine, or the supervisor for a queued one).
pub type CommandHandler = Box<dyn Fn(OperatorCommand) -> CommandReply + Send>;

/// How long a client waits for the engine's answer. An abort or a pause is one libvirt call,
/// bounded by the call timeout; this leaves room for it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(40);

/// How often the accept loop looks at its stop flag.
const ACCEPT_POLL_INTERVAL: Duration = Duration::from_millis(100);

pub fn control_dir() -> PathBuf {
    crate::logging::state_dir().join("control")
}

/// The socket for `instance`. Domain names may hold almost any character; anything outside a
/// plain set is written as `%XX` so the name stays one path component and stays unique.
pub fn socket_path(instance: &str) -> PathBuf {
    socket_path_in(&control_dir(), instance)
}

fn socket_path_in(dir: &Path, instance: &str) -> PathBuf {
    let mut file_name = String::new();
    for byte in instance.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            file_name.push(byte as char);
        } else {
            file_name.push_str(&format!("%{byte:02X}"));
        }
    }
    dir.join(format!("{file_name}.sock"))
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    command: OperatorCommand,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    ok: bool,
    message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No ferry process is watching this instance's migration.
    #[error("no ferry process is watching a migration of {instance}")]
    NoListener { instance: String },
    #[error(
        "another ferry process (socket {}) is already watching {instance}; \
         steer it from there, or stop that ferry first",
        path.display()
    )]
    AlreadyWatched { instance: String, path: PathBuf },
    #[error("control socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Serves one instance's socket until dropped; dropping removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // Not joined: the supervisor task drops this, and the thread may be waiting on the
        // supervisor's answer to a command; it sees the flag within one poll interval.
        self.stop.store(true, Ordering::Relaxed);
        drop(self.thread.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> ControlError + '_ {
    move |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Listens for commands to `instance`'s migration and passes them to its engine. A socket left
/// by a ferry that was killed is replaced; one that still answers belongs to a live ferry and
/// is refused, so two processes never steer the same migration.
pub fn serve(instance: &str, handler: CommandHandler) -> Result<ControlServer, ControlError> {
    serve_in(&control_dir(), instance, handler)
}

fn serve_in(
    dir: &Path,
    instance: &str,
    handler: CommandHandler,
) -> Result<ControlServer, ControlError> {
    let path = socket_path_in(dir, instance);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))?;
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(ControlError::AlreadyWatched {
                instance: instance.to_string(),
                path,
            });
        }
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    let listener = UnixListener::bind(&path).map_err(io_error(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error(&path))?;
    listener.set_nonblocking(true).map_err(io_error(&path))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let thread = thread::Builder::new()
        .name(format!("control-{instance}"))
        .spawn(move || accept_loop(listener, handler, stop_flag))
        .map_err(io_error(&path))?;
    Ok(ControlServer {
        path,
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: UnixListener, handler: CommandHandler, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // One client at a time is plenty: each command is one libvirt call.
                let _ = answer(stream, &handler);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_POLL_INTERVAL)
            }
            Err(_) => thread::sleep(ACCEPT_POLL_INTERVAL),
        }
    }
}

fn answer(stream: UnixStream, handler: &CommandHandler) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => handler(request.command),
        Err(error) => Err(format!("malformed control request: {error}")),
    };
    let reply = match reply {
        Ok(message) => Reply { ok: true, message },
        Err(message) => Reply { ok: false, message },
    };
    let mut stream = stream;
    writeln!(stream, "{}", serde_json::to_string(&reply)?)?;
    Ok(())
}

/// Sends `command` to the ferry watching `instance`'s migration and returns its answer.
pub fn send(instance: &str, command: OperatorCommand) -> Result<CommandReply, ControlError> {
    send_in(&control_dir(), instance, command)
}

fn send_in(
    dir: &Path,
    instance: &str,
    command: OperatorCommand,
) -> Result<CommandReply, ControlError> {
    let path = socket_path_in(dir, instance);
    let no_listener = || ControlError::NoListener {
        instance: instance.to_string(),
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(no_listener())
        }
        Err(error) => return Err(io_error(&path)(error)),
    };
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT + Duration::from_secs(5)))
        .map_err(io_error(&path))?;
    let request = serde_json::to_string(&Request { command }).expect("request serializes");
    writeln!(stream, "{request}").map_err(io_error(&path))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(io_error(&path))?;
    if line.trim().is_empty() {
        // The watching ferry ended between our connect and its answer.
        return Err(no_listener());
    }
    let reply: Reply = serde_json::from_str(&line).map_err(|e| ControlError::Io {
        path: path.clone(),
        source: io::Error::new(ErrorKind::InvalidData, e),
    })?;
    Ok(if reply.ok {
        Ok(reply.message)
    } else {
        Err(reply.message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_reaches_the_handler_and_its_answer_comes_back_then_the_socket_goes() {
        let dir = std::env::temp_dir().join(format!("ferry-control-test-{}", std::process::id()));
        let server = serve_in(
            &dir,
            "web-1",
            Box::new(|command| match command {
                OperatorCommand::Abort => Err("abort refused: in post-copy".into()),
                other => Ok(format!("done: {other:?}")),
            }),
        )
        .unwrap();
        assert!(matches!(
            serve_in(&dir, "web-1", Box::new(|_| Ok(String::new()))),
            Err(ControlError::AlreadyWatched { .. })
        ));
        assert_eq!(
            send_in(&dir, "web-1", OperatorCommand::Abort).unwrap(),
            Err("abort refused: in post-copy".to_string())
        );
        assert_eq!(
            send_in(
                &dir,
                "web-1",
                OperatorCommand::SetMaxDowntime { downtime_ms: 700 }
            )
            .unwrap(),
            Ok("done: SetMaxDowntime { downtime_ms: 700 }".to_string())
        );
        assert!(matches!(
            send_in(&dir, "web-2", OperatorCommand::Abort),
            Err(ControlError::NoListener { .. })
        ));
        let path = server.path().to_path_buf();
        drop(server);
        assert!(!path.exists());
        assert!(matches!(
            send_in(&dir, "web-1", OperatorCommand::Abort),
            Err(ControlError::NoListener { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn socket_names_stay_one_component_and_unique() {
        let plain = socket_path_in(Path::new("/x"), "web-1.prod_a");
        assert_eq!(plain.file_name().unwrap(), "web-1.prod_a.sock");
        let odd = socket_path_in(Path::new("/x"), "../etc/x y");
        assert_eq!(odd.file_name().unwrap(), "..%2Fetc%2Fx%20y.sock");
        assert_ne!(socket_path("a b"), socket_path("a_b"));
    }
}
