//! The lab's real Nova (`ferry lab up --nova`), reached from tests with plain `curl` calls,
//! outside ferry's code: what a test checks about the cloud it reads this way.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{ferry, lab_required};

pub const LAB_CLOUDS_YAML: &str = "/var/lib/ferry-lab/clouds.yaml";
pub const LAB_CONFIG: &str = "/var/lib/ferry-lab/ferry.toml";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Brings the lab and its cloud up (idempotent) and logs in as the cloud's admin, or None
/// (after saying why) when lab tests are skipped here.
pub fn nova_lab_or_skip(test: &str) -> Option<PlainCloud> {
    if !is_root() {
        if lab_required() {
            panic!("{test}: FERRY_REQUIRE_LAB=1 but not running as root; lab tests need root");
        }
        eprintln!("\n*** SKIPPED lab test {test}: not root. ***\n");
        return None;
    }
    let (ok, stdout, stderr) = ferry(&["lab", "up", "--nova"]);
    assert!(
        ok,
        "{test}: ferry lab up --nova failed:\n{stdout}\n{stderr}"
    );
    Some(PlainCloud::log_in("ferry-lab"))
}

/// A plain HTTP call, JSON in and out: (status, body).
pub fn curl(method: &str, url: &str, headers: &[String], body: Option<&Value>) -> (u16, Vec<u8>) {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ]);
    }
    let output = command.arg(url).output().expect("run curl");
    assert!(output.status.success(), "curl {url}: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.as_bytes().to_vec())
}

/// What a test knows of the cloud: a token and the compute endpoint, read with curl.
pub struct PlainCloud {
    pub token: String,
    pub compute: String,
    pub placement: String,
    pub image: String,
}

impl PlainCloud {
    pub fn log_in(cloud: &str) -> PlainCloud {
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(LAB_CLOUDS_YAML).unwrap()).unwrap();
        let auth = &yaml["clouds"][cloud]["auth"];
        let text = |key: &str| auth[key].as_str().unwrap().to_string();
        let request = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": text("username"), "domain": {"name": text("user_domain_name")},
                "password": text("password")}}},
            "scope": {"project": {"name": text("project_name"),
                "domain": {"name": text("project_domain_name")}}}}});
        let url = format!("{}/auth/tokens", text("auth_url").trim_end_matches('/'));
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-D", "-"])
            .args([
                "-H",
                "Content-Type: application/json",
                "-d",
                &request.to_string(),
            ])
            .arg(&url)
            .output()
            .expect("run curl");
        let answer = String::from_utf8(output.stdout).unwrap();
        let (headers, body) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer from {url}: {answer}"));
        let token = headers
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("x-subject-token")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no token from {url}: {headers}"));
        let body: Value = serde_json::from_str(body).unwrap();
        let public_url = |service_type: &str| {
            body["token"]["catalog"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|service| service["type"] == service_type)
                .flat_map(|service| service["endpoints"].as_array().unwrap().iter())
                .find(|endpoint| endpoint["interface"] == "public")
                .and_then(|endpoint| endpoint["url"].as_str())
                .unwrap_or_else(|| panic!("no public {service_type} endpoint in {body}"))
                .trim_end_matches('/')
                .to_string()
        };
        PlainCloud {
            token,
            compute: public_url("compute"),
            placement: public_url("placement"),
            image: public_url("image"),
        }
    }

    /// GET of a full URL with an `OpenStack-API-Version` header such as "placement 1.0".
    pub fn get_url(&self, url: &str, version: &str) -> Value {
        let headers = [
            format!("X-Auth-Token: {}", self.token),
            format!("OpenStack-API-Version: {version}"),
        ];
        let (status, body) = curl("GET", url, &headers, None);
        assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// GET of a compute API path at a compute microversion.
    pub fn compute_at(&self, path: &str, version: &str) -> Value {
        self.get_url(
            &format!("{}{path}", self.compute),
            &format!("compute {version}"),
        )
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        version: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let headers = [
            format!("X-Auth-Token: {}", self.token),
            format!("OpenStack-API-Version: compute {version}"),
        ];
        let (status, bytes) = curl(method, &format!("{}{path}", self.compute), &headers, body);
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, "2.80", None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn server(&self, id: &str) -> Value {
        self.get(&format!("/servers/{id}"))["server"].clone()
    }

    /// (status, task state, host) of a server, as Nova's API says.
    pub fn placement_of(&self, id: &str) -> (String, Option<String>, String) {
        let server = self.server(id);
        (
            server["status"].as_str().unwrap_or_default().to_string(),
            server["OS-EXT-STS:task_state"].as_str().map(str::to_string),
            server["OS-EXT-SRV-ATTR:host"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    /// Boots `image`/`flavor` on `host` with no network and waits until it is ACTIVE; the
    /// guard deletes it when the test ends, however it ends.
    pub fn boot(&self, name: &str, image: &str, flavor: &str, host: &str) -> ServerGuard<'_> {
        let images = self.get_image_id(image);
        let body = json!({"server": {"name": name, "imageRef": images, "flavorRef": flavor,
            "networks": "none", "availability_zone": format!("nova:{host}")}});
        let (status, answer) = self.call("POST", "/servers", "2.37", Some(&body));
        assert_eq!(status, 202, "boot {name}: {answer}");
        let id = answer["server"]["id"].as_str().unwrap().to_string();
        let guard = ServerGuard { cloud: self, id };
        self.wait_for(&guard.id, Duration::from_secs(240), |(status, task, _)| {
            assert_ne!(status, "ERROR", "boot {name} went to ERROR");
            status == "ACTIVE" && task.is_none()
        });
        guard
    }

    fn get_image_id(&self, name: &str) -> String {
        // Nova's image proxy is gone at 2.36+; the image API lists by name.
        let (status, body) = self.call("GET", &format!("/images?name={name}"), "2.35", None);
        assert_eq!(status, 200, "image {name}: {body}");
        body["images"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no image {name}"))
            .to_string()
    }

    /// Waits until `done` holds for the server's (status, task, host); panics after `timeout`.
    pub fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        mut done: impl FnMut(&(String, Option<String>, String)) -> bool,
    ) -> (String, Option<String>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let placement = self.placement_of(id);
            if done(&placement) {
                return placement;
            }
            assert!(
                Instant::now() < deadline,
                "server {id} stuck at {placement:?}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Nova's migrations of a server (all types, newest last).
    pub fn migrations_of(&self, id: &str) -> Vec<Value> {
        let mut all = self.get(&format!("/os-migrations?instance_uuid={id}"))["migrations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        all.sort_by_key(|m| m["id"].as_u64());
        all
    }
}

/// Deletes its server when dropped, so a failed test leaves the cloud as it found it.
pub struct ServerGuard<'a> {
    cloud: &'a PlainCloud,
    pub id: String,
}

impl ServerGuard<'_> {
    /// libvirt's name of the server's domain.
    pub fn instance_name(&self) -> String {
        self.cloud.server(&self.id)["OS-EXT-SRV-ATTR:instance_name"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for ServerGuard<'_> {
    fn drop(&mut self) {
        // A migration still running would keep the delete waiting: abort what runs first.
        let (_, running) = self.cloud.call(
            "GET",
            &format!("/servers/{}/migrations", self.id),
            "2.24",
            None,
        );
        for migration in running["migrations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let mid = migration["id"].as_u64().unwrap_or_default();
            let _ = self.cloud.call(
                "DELETE",
                &format!("/servers/{}/migrations/{mid}", self.id),
                "2.65",
                None,
            );
        }
        let _ = self
            .cloud
            .call("DELETE", &format!("/servers/{}", self.id), "2.1", None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let (status, _) = self
                .cloud
                .call("GET", &format!("/servers/{}", self.id), "2.1", None);
            if status == 404 {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!("server {} was not deleted within 120 s", self.id);
    }
}

/// Which lab hosts define the domain `name`, read with virsh through the lab's ssh.
pub fn hosts_defining(name: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for host in ["hv1", "hv2", "hv3"] {
        let uri =
            format!("qemu+ssh://root@{host}/system?command=/var/lib/ferry-lab/ssh/ssh&no_tty=1");
        let output = Command::new("virsh")
            .args(["-c", &uri, "domstate", name])
            .output()
            .expect("run virsh");
        if output.status.success() {
            found.push((
                host.to_string(),
                String::from_utf8_lossy(&output.stdout).trim().to_string(),
            ));
        }
    }
    found
}

pub fn lab_config() -> &'static str {
    assert!(
        Path::new(LAB_CONFIG).exists(),
        "no lab config at {LAB_CONFIG}"
    );
    LAB_CONFIG
}
