//! Cold migration, resize, confirm and revert carried out by the lab's real Nova (`ferry lab
//! up --nova`) through `ferry migrate --cold --cloud`, `ferry resize`, `ferry confirm|revert
//! --cloud`. What ferry says is checked against Nova's API read here with a plain `curl` and
//! against the compute hosts' libvirt read with `virsh`, outside ferry's code.
//!
//! Each test boots its own server on hv1 and deletes it however the test ends. Run as root,
//! one at a time, under the lab lock:
//! `flock /tmp/ferry-lab.lock cargo test --test lab_nova_cold -- --test-threads=1`.
//! They bring the lab and its cloud up first (`ferry lab up --nova`); when not root they are
//! skipped, unless FERRY_REQUIRE_LAB=1, where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::nova::{load_cloud, CloudSelection, NovaClient};
use ferry::runtime::wait;
use serde_json::{json, Value};

const LAB_FERRY_CONFIG: &str = "/var/lib/ferry-lab/ferry.toml";
const CLOUD: &str = "ferry-lab";
const SOURCE: &str = "hv1";
/// The servers' root disks: the lab mounts each host's Nova instances dir here.
const HOSTS_DIR: &str = "/var/lib/ferry-lab/hosts";
/// ferry.small's root disk (1 GiB): the part of the disk a resize must keep as it was.
const SMALL_ROOT_DISK_BYTES: u64 = 1 << 30;

/// The lab's cloud as this test reaches it with curl, brought up first if it is down (as the
/// other Nova suites do), or `None` (after saying why) when lab tests are skipped here.
fn cloud_or_skip(test: &str) -> Option<Cloud> {
    let plain = common::nova::nova_lab_or_skip(test)?;
    Some(Cloud {
        token: plain.token,
        compute: plain.compute,
        image: plain.image,
    })
}

/// A plain HTTP call (the shared one), its body read as JSON: (status, body).
fn curl(method: &str, url: &str, headers: &[String], body: Option<&Value>) -> (u16, Value) {
    let (status, bytes) = common::nova::curl(method, url, headers, body);
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What the test itself knows of the cloud: a token and the endpoints, read with curl.
struct Cloud {
    token: String,
    compute: String,
    image: String,
}

impl Cloud {
    fn call(&self, method: &str, path: &str, version: &str, body: Option<&Value>) -> (u16, Value) {
        let headers = [
            format!("X-Auth-Token: {}", self.token),
            format!("OpenStack-API-Version: compute {version}"),
        ];
        curl(method, &format!("{}{path}", self.compute), &headers, body)
    }

    fn get(&self, path: &str, version: &str) -> Value {
        let (status, body) = self.call("GET", path, version, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The server as Nova shows it (2.47: the flavor embedded, with its name).
    fn server(&self, id: &str) -> Value {
        self.get(&format!("/servers/{id}"), "2.47")["server"].clone()
    }

    /// Nova's migrations of the server, newest first.
    fn migrations(&self, id: &str) -> Vec<Value> {
        let mut migrations = self.get(&format!("/os-migrations?instance_uuid={id}"), "2.59")
            ["migrations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        migrations.sort_by_key(|m| std::cmp::Reverse(m["id"].as_u64()));
        migrations
    }

    fn instance_actions(&self, id: &str) -> usize {
        self.get(&format!("/servers/{id}/os-instance-actions"), "2.58")["instanceActions"]
            .as_array()
            .map_or(0, Vec::len)
    }

    fn image_id(&self, name: &str) -> String {
        let headers = [format!("X-Auth-Token: {}", self.token)];
        let (status, body) = curl(
            "GET",
            &format!("{}/v2/images?name={name}", self.image),
            &headers,
            None,
        );
        assert_eq!(status, 200, "list images: {body}");
        body["images"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no image {name}: {body}"))
            .to_string()
    }

    /// Boots a server of ferry.small on hv1 with no network and waits until it is ACTIVE.
    fn boot(&self, name: &str, image: &str) -> BootedServer<'_> {
        let body = json!({"server": {
            "name": name,
            "imageRef": self.image_id(image),
            "flavorRef": "ferry.small",
            "networks": "none",
            "availability_zone": format!("nova:{SOURCE}"),
        }});
        let (status, answer) = self.call("POST", "/servers", "2.37", Some(&body));
        assert_eq!(status, 202, "boot {name}: {answer}");
        let server = BootedServer {
            cloud: self,
            id: answer["server"]["id"].as_str().unwrap().to_string(),
            name: name.to_string(),
        };
        server.wait_until(Duration::from_secs(180), "ACTIVE on hv1", |s| {
            assert_ne!(s["status"], "ERROR", "boot of {name} failed: {s}");
            s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null()
        });
        assert_eq!(host_of(&server.now()), SOURCE);
        server
    }
}

/// A server this test booted; deleted (and waited for) however the test ends, so the lab
/// keeps its shape.
struct BootedServer<'a> {
    cloud: &'a Cloud,
    id: String,
    name: String,
}

impl BootedServer<'_> {
    fn now(&self) -> Value {
        self.cloud.server(&self.id)
    }

    fn wait_until(&self, bound: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let server = self.now();
            if done(&server) {
                return server;
            }
            assert!(
                started.elapsed() < bound,
                "{} not {what} within {bound:?}: {server}",
                self.name
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn instance_name(&self) -> String {
        self.now()["OS-EXT-SRV-ATTR:instance_name"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for BootedServer<'_> {
    fn drop(&mut self) {
        let (status, body) =
            self.cloud
                .call("DELETE", &format!("/servers/{}", self.id), "2.1", None);
        if status != 204 && status != 404 {
            eprintln!("delete {}: HTTP {status}: {body}", self.name);
            return;
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            let (status, _) = self
                .cloud
                .call("GET", &format!("/servers/{}", self.id), "2.1", None);
            if status == 404 {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!("{} was not gone 120 s after its delete", self.name);
    }
}

fn host_of(server: &Value) -> String {
    server["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn uri(host: &str) -> String {
    format!("qemu+ssh://root@{host}/system?command=/var/lib/ferry-lab/ssh/ssh&no_tty=1")
}

fn virsh(host: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new("virsh")
        .args(["-c", &uri(host)])
        .args(args)
        .output()
        .expect("run virsh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Every lab host libvirt has the domain defined on, with its state (`running`, `shut off`).
fn libvirt_placements(domain: &str) -> Vec<(String, String)> {
    ["hv1", "hv2", "hv3"]
        .iter()
        .filter_map(|host| {
            let (defined, state) = virsh(host, &["domstate", domain]);
            defined.then(|| (host.to_string(), state.trim().to_string()))
        })
        .collect()
}

/// A `virsh dominfo` field, such as "CPU(s)" or "Max memory".
fn dominfo(host: &str, domain: &str, field: &str) -> String {
    let (ok, text) = virsh(host, &["dominfo", domain]);
    assert!(ok, "virsh dominfo {domain} on {host}: {text}");
    text.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == field).then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {field} in dominfo: {text}"))
}

/// sha256 of the first `bytes` of the guest-visible content of the server's root disk: Nova's
/// qcow2 overlay read through its backing file (`-U`: the guest may have it open). The
/// overlay names its backing file as the host's Nova sees it, under the lab's shared
/// instances path; here each host's directory is read where the lab keeps it.
fn root_disk_sha256(host: &str, server_id: &str, bytes: u64) -> String {
    let instances = PathBuf::from(HOSTS_DIR).join(host).join("nova-instances");
    let disk = instances.join(server_id).join("disk");
    assert!(disk.exists(), "no root disk at {}", disk.display());
    let info = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&disk)
        .output()
        .expect("run qemu-img info");
    assert!(info.status.success(), "qemu-img info: {info:?}");
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    let mut options = format!("driver=qcow2,file.filename={}", disk.display());
    if let Some(backing) = info["backing-filename"].as_str() {
        let base = Path::new(backing).file_name().unwrap();
        options += &format!(
            ",backing.driver={},backing.file.filename={}",
            info["backing-filename-format"].as_str().unwrap_or("raw"),
            instances.join("_base").join(base).display()
        );
    }
    let raw = std::env::temp_dir().join(format!("ferry-lab-nova-cold-{server_id}.raw"));
    let output = Command::new("qemu-img")
        .args(["convert", "-U", "-O", "raw", "--image-opts", &options])
        .arg(&raw)
        .output()
        .expect("run qemu-img convert");
    assert!(output.status.success(), "qemu-img convert: {output:?}");
    assert!(
        std::fs::metadata(&raw).unwrap().len() >= bytes,
        "the disk is shorter than {bytes} bytes"
    );
    let sum = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {bytes} '{}' | sha256sum", raw.display()))
        .output()
        .expect("run sha256sum");
    let _ = std::fs::remove_file(&raw);
    assert!(sum.status.success(), "sha256sum: {sum:?}");
    String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// ferry with the lab's config and its own history (a state dir of this test).
struct Ferry {
    state_dir: PathBuf,
}

impl Ferry {
    fn new(test: &str) -> Ferry {
        let state_dir = std::env::temp_dir().join(format!("ferry-lab-nova-cold-{test}"));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        Ferry { state_dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .args(["--config", LAB_FERRY_CONFIG])
            .args(args)
            .env("XDG_STATE_HOME", &self.state_dir);
        command
    }

    /// Runs ferry; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let result = self.run_quietly(args);
        eprintln!("ferry {}:\n{}{}", args.join(" "), result.1, result.2);
        result
    }

    /// Runs ferry without logging what it printed (for polls).
    fn run_quietly(&self, args: &[&str]) -> (bool, String, String) {
        let output = self.command(args).output().expect("run ferry");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Starts ferry as a child process, its output kept for the log.
    fn spawn(&self, args: &[&str]) -> KilledOnDrop {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry");
        KilledOnDrop(Some(child))
    }

    /// The history's records, newest first.
    fn history(&self) -> Vec<Value> {
        let (ok, stdout, stderr) = self.run_quietly(&["history", "--json"]);
        assert!(ok, "ferry history: {stderr}");
        serde_json::from_str::<Value>(&stdout)
            .unwrap_or_else(|e| panic!("history JSON: {e}: {stdout}"))
            .as_array()
            .cloned()
            .unwrap()
    }
}

/// A ferry child process, killed (SIGKILL) and reaped however the test ends.
struct KilledOnDrop(Option<Child>);

impl KilledOnDrop {
    fn has_ended(&mut self) -> bool {
        self.0
            .as_mut()
            .is_none_or(|child| child.try_wait().unwrap().is_some())
    }

    /// SIGKILL, as an operator's `kill -9` or a crash: ferry gets no chance to write anything.
    /// Returns what it printed.
    fn kill(&mut self) -> String {
        let Some(mut child) = self.0.take() else {
            return String::new();
        };
        let _ = child.kill();
        let output = child.wait_with_output().expect("reap ferry");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Checks Nova, libvirt and ferry's history agree that the server waits in VERIFY_RESIZE on
/// `destination`, and returns ferry's history record id.
fn check_awaiting_confirm(
    cloud: &Cloud,
    ferry: &Ferry,
    server: &BootedServer,
    destination: &str,
) -> u64 {
    let now = server.now();
    assert_eq!(now["status"], "VERIFY_RESIZE", "{now}");
    assert_eq!(host_of(&now), destination, "{now}");
    let newest = &cloud.migrations(&server.id)[0];
    assert_eq!(newest["status"], "finished", "{newest}");
    assert_eq!(newest["source_compute"], SOURCE, "{newest}");
    assert_eq!(newest["dest_compute"], destination, "{newest}");
    let history = ferry.history();
    let record = &history[0];
    assert_eq!(record["instance_uuid"], server.id.as_str(), "{record}");
    assert_eq!(record["kind"], "cold", "{record}");
    assert_eq!(record["outcome"], "awaiting_confirm", "{record}");
    assert_eq!(record["plan"]["backend"], "nova", "{record}");
    assert_eq!(
        record["plan"]["nova_migration_id"], newest["id"],
        "{record}"
    );
    record["id"].as_u64().unwrap()
}

/// `ferry migrate --cold --to destination`, checked to wait for confirm there; returns ferry's
/// history record id.
fn cold_migrate(cloud: &Cloud, ferry: &Ferry, server: &BootedServer, destination: &str) -> u64 {
    let (ok, stdout, stderr) = ferry.run(&[
        "migrate",
        &server.name,
        "--cold",
        "--cloud",
        CLOUD,
        "--to",
        destination,
    ]);
    assert!(ok, "ferry migrate --cold: {stderr}");
    assert!(stdout.contains("awaiting confirm"), "{stdout}");
    assert!(
        stdout.contains(&format!("VERIFY_RESIZE task none on {destination}")),
        "{stdout}"
    );
    check_awaiting_confirm(cloud, ferry, server, destination)
}

/// After a confirm or revert: Nova settled on `host` with no task, the migration `status`,
/// libvirt has the domain on `host` only, running, and ferry's record `record_id` ended as
/// `outcome`.
fn check_settled(
    cloud: &Cloud,
    ferry: &Ferry,
    server: &BootedServer,
    host: &str,
    migration_status: &str,
    record_id: u64,
    outcome: &str,
) {
    let now = server.now();
    assert_eq!(now["status"], "ACTIVE", "{now}");
    assert!(now["OS-EXT-STS:task_state"].is_null(), "{now}");
    assert_eq!(host_of(&now), host, "{now}");
    assert_eq!(cloud.migrations(&server.id)[0]["status"], migration_status);
    // Nova's cleanup of the other host may lag its answer by a moment.
    let domain = server.instance_name();
    let started = Instant::now();
    let placements = loop {
        let placements = libvirt_placements(&domain);
        if placements.len() == 1 || started.elapsed() > Duration::from_secs(60) {
            break placements;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(
        placements,
        vec![(host.to_string(), "running".to_string())],
        "libvirt must have {domain} on {host} only, running"
    );
    let history = ferry.history();
    let record = history
        .iter()
        .find(|r| r["id"].as_u64() == Some(record_id))
        .unwrap_or_else(|| panic!("record {record_id} gone: {history:?}"));
    assert_eq!(record["outcome"], outcome, "{record}");
    assert_eq!(history.len(), 1, "one record, finished twice: {history:?}");
}

/// `ferry confirm` of a server waiting for confirm on hv2, checked settled there only, its
/// record `record_id` confirmed.
fn confirm_on_hv2(cloud: &Cloud, ferry: &Ferry, server: &BootedServer, record_id: u64) {
    let (ok, stdout, stderr) = ferry.run(&["confirm", &server.name, "--cloud", CLOUD]);
    assert!(ok, "ferry confirm: {stderr}");
    assert!(
        stdout.contains("confirmed by Nova: ACTIVE on hv2"),
        "{stdout}"
    );
    check_settled(
        cloud,
        ferry,
        server,
        "hv2",
        "confirmed",
        record_id,
        "confirmed",
    );
}

#[test]
fn a_cold_migration_to_a_named_host_waits_for_confirm_and_is_confirmed_there() {
    let test = "a_cold_migration_to_a_named_host_waits_for_confirm_and_is_confirmed_there";
    let Some(cloud) = cloud_or_skip(test) else {
        return;
    };
    let ferry = Ferry::new("cold-confirm");
    let server = cloud.boot("ferry-cold-confirm", "ferry-dirty");
    let destination = "hv2";
    let record_id = cold_migrate(&cloud, &ferry, &server, destination);

    confirm_on_hv2(&cloud, &ferry, &server, record_id);
}

#[test]
fn a_reverted_cold_migration_is_back_on_its_source_only() {
    let test = "a_reverted_cold_migration_is_back_on_its_source_only";
    let Some(cloud) = cloud_or_skip(test) else {
        return;
    };
    let ferry = Ferry::new("cold-revert");
    let server = cloud.boot("ferry-cold-revert", "ferry-idle");
    let destination = "hv3";
    let record_id = cold_migrate(&cloud, &ferry, &server, destination);

    let (ok, stdout, stderr) = ferry.run(&["revert", &server.name, "--cloud", CLOUD]);
    assert!(ok, "ferry revert: {stderr}");
    assert!(
        stdout.contains("reverted by Nova: ACTIVE on hv1"),
        "{stdout}"
    );
    check_settled(
        &cloud, &ferry, &server, SOURCE, "reverted", record_id, "reverted",
    );
}

#[test]
fn a_resize_to_a_larger_flavor_gives_the_guest_its_size_and_keeps_its_disk() {
    let test = "a_resize_to_a_larger_flavor_gives_the_guest_its_size_and_keeps_its_disk";
    let Some(cloud) = cloud_or_skip(test) else {
        return;
    };
    let ferry = Ferry::new("resize");
    let server = cloud.boot("ferry-cold-resize", "ferry-idle");
    let disk_before = root_disk_sha256(SOURCE, &server.id, SMALL_ROOT_DISK_BYTES);

    let (ok, stdout, stderr) = ferry.run(&[
        "resize",
        &server.name,
        "--flavor",
        "ferry.large",
        "--cloud",
        CLOUD,
        "--json",
    ]);
    assert!(ok, "ferry resize: {stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "progress" && l["status"] == "RESIZE"),
        "{stdout}"
    );
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result", "{result}");
    assert_eq!(result["outcome"], "awaiting_confirm", "{result}");
    assert_eq!(result["flavor"], "ferry.large", "{result}");
    let now = server.now();
    assert_eq!(now["status"], "VERIFY_RESIZE", "{now}");
    let destination = host_of(&now);
    assert_eq!(result["destination_host"], destination.as_str(), "{result}");
    assert_eq!(cloud.migrations(&server.id)[0]["migration_type"], "resize");
    let record = &ferry.history()[0];
    assert_eq!(record["policy"], "nova-resize", "{record}");
    assert_eq!(record["plan"]["flavor"], "ferry.large", "{record}");

    let (ok, _, stderr) = ferry.run(&["confirm", &server.name, "--cloud", CLOUD]);
    assert!(ok, "ferry confirm: {stderr}");
    let now = server.now();
    assert_eq!(now["status"], "ACTIVE", "{now}");
    assert_eq!(now["flavor"]["original_name"], "ferry.large", "{now}");
    assert_eq!(host_of(&now), destination, "{now}");
    let domain = server.instance_name();
    assert_eq!(dominfo(&destination, &domain, "CPU(s)"), "2");
    assert_eq!(dominfo(&destination, &domain, "Max memory"), "786432 KiB");
    assert_eq!(dominfo(&destination, &domain, "State"), "running");
    assert_eq!(
        root_disk_sha256(&destination, &server.id, SMALL_ROOT_DISK_BYTES),
        disk_before,
        "the first GiB of the root disk must read as before the resize"
    );
    assert_eq!(ferry.history()[0]["outcome"], "confirmed");
}

/// Enables the compute service again however the test ends.
struct ReEnableService<'a> {
    client: &'a NovaClient,
    host: String,
}

impl Drop for ReEnableService<'_> {
    fn drop(&mut self) {
        let services = wait(self.client.compute_services()).expect("list compute services");
        let service = services.iter().find(|s| s.host == self.host).unwrap();
        wait(self.client.set_service_enabled(service, true, None))
            .unwrap_or_else(|e| panic!("re-enable {}: {e}", self.host));
    }
}

#[test]
fn a_cold_migration_to_its_own_host_or_a_disabled_one_is_refused_and_nothing_is_sent() {
    let test = "a_cold_migration_to_its_own_host_or_a_disabled_one_is_refused_and_nothing_is_sent";
    let Some(cloud) = cloud_or_skip(test) else {
        return;
    };
    let ferry = Ferry::new("refusal");
    let server = cloud.boot("ferry-cold-refusal", "ferry-idle");
    let migrations_before = cloud.migrations(&server.id).len();
    let actions_before = cloud.instance_actions(&server.id);
    let unchanged = || {
        let now = server.now();
        assert_eq!(now["status"], "ACTIVE", "{now}");
        assert!(now["OS-EXT-STS:task_state"].is_null(), "{now}");
        assert_eq!(host_of(&now), SOURCE, "{now}");
        assert_eq!(cloud.migrations(&server.id).len(), migrations_before);
        assert_eq!(cloud.instance_actions(&server.id), actions_before);
        assert!(ferry.history().is_empty(), "a refusal starts no migration");
    };

    let (ok, _, stderr) = ferry.run(&[
        "migrate",
        &server.name,
        "--cold",
        "--cloud",
        CLOUD,
        "--to",
        SOURCE,
    ]);
    assert!(!ok, "a cold migration to its own host must fail");
    assert!(
        stderr.contains("hv1 is the server's own host: choose another destination"),
        "{stderr}"
    );
    unchanged();

    let profile = load_cloud(&CloudSelection {
        name: Some(CLOUD.to_string()),
        clouds_yaml: Some(PathBuf::from(common::nova::LAB_CLOUDS_YAML)),
    })
    .unwrap();
    let client = wait(NovaClient::connect(profile)).expect("connect to the lab's cloud");
    let services = wait(client.compute_services()).expect("list compute services");
    let hv3 = services.iter().find(|s| s.host == "hv3").unwrap();
    let _restore = ReEnableService {
        client: &client,
        host: "hv3".into(),
    };
    wait(client.set_service_enabled(hv3, false, Some("ferry lab_nova_cold: refusal")))
        .expect("disable hv3");
    let (ok, _, stderr) = ferry.run(&[
        "migrate",
        &server.name,
        "--cold",
        "--cloud",
        CLOUD,
        "--to",
        "hv3",
    ]);
    assert!(!ok, "a cold migration to a disabled host must fail");
    assert!(
        stderr.contains("hv3: its compute service is disabled (ferry lab_nova_cold: refusal)"),
        "{stderr}"
    );
    unchanged();
}

/// Nova's statuses of a cold migration still under way (before `finished`, VERIFY_RESIZE).
const MOVING: &[&str] = &[
    "queued",
    "accepted",
    "pre-migrating",
    "migrating",
    "post-migrating",
];

#[test]
fn a_cold_migration_whose_ferry_was_killed_mid_watch_is_settled_by_resume_and_confirmed() {
    let test =
        "a_cold_migration_whose_ferry_was_killed_mid_watch_is_settled_by_resume_and_confirmed";
    let Some(cloud) = cloud_or_skip(test) else {
        return;
    };
    let ferry = Ferry::new("cold-resume");
    let server = cloud.boot("ferry-cold-resume", "ferry-dirty");
    let destination = "hv2";
    let mut migrate = ferry.spawn(&[
        "migrate",
        &server.name,
        "--cold",
        "--cloud",
        CLOUD,
        "--to",
        destination,
    ]);

    // Killed once its history record exists and Nova is moving the server.
    let started = Instant::now();
    let record_id = loop {
        assert!(
            !migrate.has_ended(),
            "ferry migrate ended before it was killed: {}",
            migrate.kill()
        );
        let history = ferry.history();
        if let Some(record) = history.first() {
            let newest = cloud.migrations(&server.id).into_iter().next();
            let status = newest
                .as_ref()
                .and_then(|m| m["status"].as_str())
                .unwrap_or("")
                .to_string();
            if MOVING.contains(&status.as_str()) {
                eprintln!("killing ferry migrate: Nova's migration is {status}");
                break record["id"].as_u64().unwrap();
            }
            assert!(
                status.is_empty(),
                "Nova's migration is {status} before ferry could be killed mid-watch: {record}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no history record with Nova's migration moving within 60 s: {history:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = migrate.kill();
    eprintln!("ferry migrate, killed:\n{said}");
    let record = &ferry.history()[0];
    assert_eq!(record["id"].as_u64(), Some(record_id), "{record}");
    assert!(
        record["outcome"].is_null(),
        "ferry was killed before its verdict, so the record must be unfinished: {record}"
    );
    eprintln!(
        "Nova, as ferry resume starts: {} task {}",
        server.now()["status"],
        server.now()["OS-EXT-STS:task_state"]
    );

    let (ok, stdout, stderr) = ferry.run(&["resume", "--json"]);
    assert!(ok, "ferry resume: {stderr}");
    let resumed: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|line: &Value| line["type"] == "resumed")
        .collect();
    assert_eq!(resumed.len(), 1, "one cold record resumed: {stdout}");
    assert_eq!(
        resumed[0]["history_id"].as_u64(),
        Some(record_id),
        "{stdout}"
    );
    assert_eq!(resumed[0]["outcome"], "awaiting_confirm", "{stdout}");
    assert_eq!(resumed[0]["host"], destination, "{stdout}");
    assert_eq!(resumed[0]["server_id"], server.id.as_str(), "{stdout}");
    // Nova (curl), libvirt and the history agree: it waits for confirm on hv2.
    assert_eq!(
        check_awaiting_confirm(&cloud, &ferry, &server, destination),
        record_id
    );
    let events = |record: &Value| record["events"].as_array().cloned().unwrap_or_default();
    let record = ferry.history()[0].clone();
    assert!(
        events(&record).iter().any(|e| e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("watched again by `ferry resume`")),
        "{record}"
    );

    // Awaiting confirm is Nova's pause, not a watch left off: a second resume leaves it.
    let (ok, stdout, stderr) = ferry.run(&["resume"]);
    assert!(ok, "second ferry resume: {stderr}");
    assert!(!stdout.contains(&server.name), "{stdout}");
    let again = ferry.history()[0].clone();
    assert_eq!(again["outcome"], "awaiting_confirm", "{again}");
    assert_eq!(events(&again).len(), events(&record).len(), "{again}");

    // check_settled: ACTIVE on hv2 per curl, defined on hv2 only (virsh), record confirmed.
    confirm_on_hv2(&cloud, &ferry, &server, record_id);
}
