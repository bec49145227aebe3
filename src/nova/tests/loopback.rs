//! The client over real sockets on the loopback: a port nobody listens on, a listener that
//! never answers, and a scripted HTTP peer for the 401 → log in again → retry path. The
//! lab test (`tests/lab_nova_door.rs`) runs the same client against the real Nova.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::admin_password;
use crate::nova::cloud_config::{CloudProfile, DomainRef, Interface};
use crate::nova::microversion::{Microversion, VersionRange};
use crate::nova::types::ComputeService;
use crate::nova::{NovaClient, NovaError};
use crate::runtime::wait;

fn profile(auth_url: &str, request_timeout: Duration) -> CloudProfile {
    CloudProfile {
        name: "loop".into(),
        origin: "test".into(),
        auth_url: auth_url.into(),
        auth: admin_password(DomainRef::Name("Default".into())),
        region_name: None,
        interface: Interface::Public,
        cacert: None,
        verify: true,
        request_timeout,
    }
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn cloud_up_to(max_minor: u16, compute_url: &str) -> NovaClient {
    NovaClient::unconnected_for_tests(
        profile("http://127.0.0.1:1/v3", Duration::from_secs(5)),
        VersionRange {
            min: Microversion::new(2, 1),
            max: Microversion::new(2, max_minor),
        },
        compute_url,
    )
}

#[test]
fn keystone_unreachable_names_the_endpoint_and_the_service() {
    let url = format!("http://127.0.0.1:{}/v3", closed_port());
    let error = wait(NovaClient::connect(profile(&url, Duration::from_secs(5)))).unwrap_err();
    assert!(error.is_unreachable(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&format!("endpoint {url}/auth/tokens unreachable")),
        "{text}"
    );
    assert!(text.contains("is keystone running"), "{text}");
}

#[test]
fn a_silent_endpoint_times_out_at_the_profiles_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v3", listener.local_addr().unwrap());
    let error = wait(NovaClient::connect(profile(
        &url,
        Duration::from_millis(300),
    )))
    .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(error.to_string().contains("within 300ms"), "{error}");
    drop(listener);
}

#[test]
fn a_feature_the_cloud_is_too_old_for_is_refused_before_sending() {
    // Every call below would fail as unreachable if it sent anything.
    let compute_url = format!("http://127.0.0.1:{}/v2.1", closed_port());
    let cloud = cloud_up_to(60, &compute_url);
    let error = wait(cloud.abort_live_migration("1234", 17, Some("queued"))).unwrap_err();
    assert!(error.is_too_old(), "{error}");
    assert_eq!(
        error.to_string(),
        "cloud loop: abort of a queued migration 17 of server 1234 needs compute API 2.65; \
         this cloud offers up to 2.60"
    );
    let error = wait(cloud_up_to(55, &compute_url).cold_migrate("1234", Some("hv2"))).unwrap_err();
    assert!(
        matches!(error, NovaError::TooOld { needs, .. } if needs == Microversion::new(2, 56)),
        "{error}"
    );
    let service = ComputeService {
        id: "7".into(),
        binary: "nova-compute".into(),
        host: "hv2".into(),
        zone: None,
        status: Default::default(),
        disabled_reason: None,
        state: Default::default(),
        forced_down: None,
        updated_at: None,
    };
    let error =
        wait(cloud_up_to(52, &compute_url).set_service_enabled(&service, false, Some("drain")))
            .unwrap_err();
    assert!(error.is_too_old(), "{error}");
    assert!(error
        .to_string()
        .contains("disable compute service hv2 needs compute API 2.53"));

    // What the cloud does offer is sent: here it cannot be reached.
    let error = wait(cloud.abort_live_migration("1234", 17, None)).unwrap_err();
    assert!(error.is_unreachable(), "{error}");
    assert!(error.to_string().contains("is nova-api running"), "{error}");
}

/// One request as the scripted peer saw it.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    auth_token: Option<String>,
    compute_version: Option<String>,
}

/// Answers each connection with the next scripted response (the client is told to close).
fn scripted_peer(responses: Vec<String>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    thread::spawn(move || {
        for response in responses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let request = read_request(&stream);
            record.lock().unwrap().push(request);
            let mut stream = stream;
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (address, seen)
}

fn read_request(stream: &TcpStream) -> Seen {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut seen = Seen {
        request_line: request_line.trim().to_string(),
        auth_token: None,
        compute_version: None,
    };
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().unwrap(),
            "x-auth-token" => seen.auth_token = Some(value),
            "openstack-api-version" => seen.compute_version = Some(value),
            _ => {}
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).unwrap();
    seen
}

fn http_response(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

#[test]
fn a_401_logs_in_once_and_retries_once_with_the_new_token() {
    let token_body = include_str!("../fixtures/keystone_token_admin.json");
    let server = r#"{"server": {"id": "1234", "name": "busy-1", "status": "ACTIVE",
        "OS-EXT-SRV-ATTR:host": "hv1", "flavor": {"original_name": "ferry.busy", "ram": 256}}}"#;
    let unauthorized = r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
    // Nova's peer: the stale token's 401, then the retry's 200. Keystone's peer: one login,
    // whose catalog points at Nova's peer.
    let (nova, nova_seen) = scripted_peer(vec![
        http_response("401 Unauthorized", "", unauthorized),
        http_response("200 OK", "", server),
    ]);
    let catalog_body = token_body.replace("http://10.77.0.10:8774/v2.1", &format!("{nova}/v2.1"));
    let (keystone_url, login_seen) = scripted_peer(vec![http_response(
        "201 Created",
        "X-Subject-Token: fresh-token\r\n",
        &catalog_body,
    )]);
    let client = NovaClient::unconnected_for_tests(
        profile(&format!("{keystone_url}/v3"), Duration::from_secs(5)),
        VersionRange {
            min: Microversion::new(2, 1),
            max: Microversion::new(2, 93),
        },
        &format!("{nova}/v2.1"),
    );
    let shown = wait(client.server("1234")).unwrap();
    assert_eq!(shown.name, "busy-1");
    assert_eq!(shown.flavor.memory_mib, Some(256));

    let nova_seen = nova_seen.lock().unwrap().clone();
    assert_eq!(nova_seen.len(), 2, "{nova_seen:?}");
    assert_eq!(nova_seen[0].request_line, "GET /v2.1/servers/1234 HTTP/1.1");
    assert_eq!(nova_seen[0].auth_token.as_deref(), Some("test-token"));
    assert_eq!(nova_seen[1].auth_token.as_deref(), Some("fresh-token"));
    assert_eq!(
        nova_seen[1].compute_version.as_deref(),
        Some("compute 2.47")
    );
    let login_seen = login_seen.lock().unwrap().clone();
    assert_eq!(login_seen.len(), 1, "{login_seen:?}");
    assert_eq!(login_seen[0].request_line, "POST /v3/auth/tokens HTTP/1.1");
}
