//! The lab's link delay (`ferry lab up --link-delay-ms N`). This machine's kernel has no
//! `netem` qdisc, so the delay lives in the one path every lab connection takes: ssh. The lab's
//! ssh config names `link_relay.c` as ProxyCommand; it connects to the host's sshd and holds
//! every chunk N ms in each direction before passing it on, preserving order. Chunks overlap in
//! flight, so it is a delay (like distance), not a cap on bandwidth.
//!
//! What it delays: every libvirt connection to a lab host, the operator's and the hosts' own
//! (a peer-to-peer migration's control connection). What it does not: QEMU's migration stream,
//! which goes host to host over plain TCP.

use std::path::Path;

use anyhow::{Context, Result};

use super::system;

const LINK_RELAY_SOURCE: &str = include_str!("link_relay.c");

/// Builds the relay into `binary` with the machine's cc (the lab needs gcc already, for the
/// guest's init), through a temporary file so a relay running now is never overwritten.
pub fn build_link_relay(build_dir: &Path, binary: &Path) -> Result<()> {
    std::fs::create_dir_all(build_dir)?;
    let source = build_dir.join("link_relay.c");
    std::fs::write(&source, LINK_RELAY_SOURCE)?;
    let temporary = binary.with_extension("ferry-tmp");
    let [source_arg, temporary_arg] = [&source, &temporary].map(|p| p.to_string_lossy());
    system::run("cc", &["-O2", "-o", &temporary_arg, &source_arg])
        .context("building the lab's link relay (needs gcc and libc6-dev)")?;
    std::fs::rename(&temporary, binary)
        .with_context(|| format!("cannot move the link relay to {}", binary.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// The relay between this test (its stdin and stdout) and an echo server: every byte
    /// crosses it twice, so a round trip costs twice the delay.
    #[test]
    fn relay_delays_each_direction_in_order_without_serialising_chunks() {
        let dir = std::env::temp_dir().join(format!("ferry-link-relay-{}", std::process::id()));
        let relay = dir.join("link-relay");
        build_link_relay(&dir, &relay).expect("cc builds the relay");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 4096];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => stream.write_all(&buffer[..n]).unwrap(),
                }
            }
        });
        const DELAY_MS: u64 = 100;
        let mut child = Command::new(&relay)
            .args([&DELAY_MS.to_string(), "127.0.0.1", &port])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut to_relay = child.stdin.take().unwrap();
        let mut from_relay = child.stdout.take().unwrap();

        // Ten chunks 20 ms apart: delivered in order, the last one a round trip after it was
        // sent. Held one after another they would take ten round trips (2 s).
        const CHUNKS: usize = 10;
        let started = Instant::now();
        let reader = std::thread::spawn(move || {
            let mut received = vec![0u8; CHUNKS * 4];
            from_relay.read_exact(&mut received[..4]).unwrap();
            let first_back = started.elapsed();
            from_relay.read_exact(&mut received[4..]).unwrap();
            (received, first_back, started.elapsed())
        });
        let mut sent = Vec::new();
        for index in 0..CHUNKS {
            let chunk = format!("c{index:02};");
            to_relay.write_all(chunk.as_bytes()).unwrap();
            to_relay.flush().unwrap();
            sent.extend_from_slice(chunk.as_bytes());
            std::thread::sleep(Duration::from_millis(20));
        }
        let (received, first_back, all_back) = reader.join().unwrap();
        assert_eq!(received, sent, "bytes arrive whole and in order");
        let round_trip = Duration::from_millis(2 * DELAY_MS);
        assert!(
            first_back >= round_trip,
            "first chunk back after {first_back:?}"
        );
        assert!(
            all_back < round_trip * 5,
            "chunks overlap in flight: all back after {all_back:?}"
        );

        // The test closes its side: the relay shuts the connection and ends.
        drop(to_relay);
        let status = child.wait().unwrap();
        assert!(status.success(), "relay ends cleanly: {status}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
