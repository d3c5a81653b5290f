//! A node claimed through the real setup API, and an API-token session to drive it.
//!
//! `Node::claim` walks the first-boot setup exactly as the web page does (code from the
//! console block, password, hostname, time zone, NTP, management network when the node asks
//! for it), signs in, and creates an API token; the token is kept on the node's STATE, so the
//! session survives reboots.

use std::net::SocketAddr;
use std::time::Duration;

use cairn_client::Fingerprint;
use serde_json::{json, Value};

use crate::deadline::Deadline;
use crate::error::LabError;
use crate::health::{self, Strictness};
use crate::https::{self, HttpRequest, HttpResponse, Trust};
use crate::node::Node;

/// The admin password lab nodes are set up with.
pub const LAB_PASSWORD: &str = "correct horse battery staple";
/// How long one API call may take (TCG nodes are slow; tasks are awaited separately).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An authenticated session (API token) with a node's API, certificate pinned.
#[derive(Debug, Clone)]
pub struct ApiSession {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    token: String,
}

impl ApiSession {
    /// A session from parts (e.g. a token kept from an earlier claim).
    pub fn new(addr: SocketAddr, fingerprint: Fingerprint, token: String) -> ApiSession {
        ApiSession {
            addr,
            fingerprint,
            token,
        }
    }

    /// The node's API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API token (for handing to cairnctl or a browser test).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Send one request; any status is returned (see [`ApiSession::expect`]).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse, LabError> {
        let req = HttpRequest {
            method,
            path,
            headers: vec![(
                "Authorization".to_string(),
                format!("Bearer {}", self.token),
            )],
            body: body.map(Value::to_string),
        };
        https::request(
            self.addr,
            &req,
            Trust::Pinned(self.fingerprint),
            Deadline::after(CALL_TIMEOUT),
        )
    }

    /// `PUT path` with raw `body` bytes (`application/octet-stream`: an image upload).
    pub fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<HttpResponse, LabError> {
        let req = HttpRequest {
            method: "PUT",
            path,
            headers: vec![(
                "Authorization".to_string(),
                format!("Bearer {}", self.token),
            )],
            body: None,
        };
        https::request_bytes(
            self.addr,
            &req,
            body,
            "application/octet-stream",
            Trust::Pinned(self.fingerprint),
            Deadline::after(CALL_TIMEOUT),
        )
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<HttpResponse, LabError> {
        self.call("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<HttpResponse, LabError> {
        self.call("POST", path, Some(body))
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<HttpResponse, LabError> {
        self.call("PUT", path, Some(body))
    }

    /// `PATCH path` with a JSON body.
    pub fn patch(&self, path: &str, body: &Value) -> Result<HttpResponse, LabError> {
        self.call("PATCH", path, Some(body))
    }

    /// `DELETE path` with a JSON body (confirmations travel in the body).
    pub fn delete(&self, path: &str, body: &Value) -> Result<HttpResponse, LabError> {
        self.call("DELETE", path, Some(body))
    }

    /// Send a request and require a 2xx answer; returns its JSON body.
    pub fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, LabError> {
        let r = self.call(method, path, body)?;
        check(self.addr, method, path, r)
    }

    /// Poll `GET /api/v1/tasks/{id}` until the task succeeds (its JSON) or fails (an error
    /// with its message), within `deadline`. Every progress value seen is recorded in the
    /// returned JSON under `"progress_seen"`.
    pub fn wait_task(&self, id: u64, deadline: Deadline) -> Result<Value, LabError> {
        let path = format!("/api/v1/tasks/{id}");
        let mut seen: Vec<u64> = Vec::new();
        let mut last = Value::Null;
        while !deadline.expired() {
            let t = self.expect("GET", &path, None)?;
            if let Some(p) = t["progress"].as_u64() {
                if seen.last() != Some(&p) {
                    seen.push(p);
                }
            }
            match t["state"].as_str() {
                Some("succeeded") => {
                    let mut t = t;
                    t["progress_seen"] = json!(seen);
                    return Ok(t);
                }
                Some("failed") => {
                    return Err(LabError::Task {
                        addr: self.addr,
                        id,
                        outcome: "failed",
                        detail: t["message"].as_str().unwrap_or_default().to_string(),
                    })
                }
                _ => last = t,
            }
            // poll interval; the deadline bounds the whole wait
            std::thread::sleep(Duration::from_millis(300).min(deadline.remaining()));
        }
        Err(LabError::Task {
            addr: self.addr,
            id,
            outcome: "did not finish in time",
            detail: format!("waited {:?}; last: {last}", deadline.total()),
        })
    }

    /// Start a task (`method path` with `body` must answer 202 with the task's id) and wait
    /// for it to succeed within `deadline`; returns the finished task as
    /// [`ApiSession::wait_task`] does (with `"progress_seen"`) and prints how long it took.
    pub fn run_task(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        deadline: Deadline,
    ) -> Result<Value, LabError> {
        let r = self.call(method, path, Some(body))?;
        let id = match r.json()["id"].as_u64() {
            Some(id) if r.status == 202 => id,
            _ => {
                return Err(LabError::TaskNotStarted {
                    addr: self.addr,
                    method: method.to_string(),
                    path: path.to_string(),
                    status: r.status,
                    body: r.body,
                })
            }
        };
        let started = std::time::Instant::now();
        let done = self
            .wait_task(id, deadline)
            .map_err(|source| LabError::TaskOf {
                method: method.to_string(),
                path: path.to_string(),
                source: Box::new(source),
            })?;
        eprintln!(
            "cairn-lab: {method} {path}: task {id}: {} ({:.1} s)",
            done["message"].as_str().unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
        Ok(done)
    }

    /// Send a request that must be refused as invalid: a 422 whose `field` names `field`.
    /// Returns the error's JSON (for checks of its message).
    pub fn expect_invalid(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        field: &str,
    ) -> Result<Value, LabError> {
        let r = self.call(method, path, Some(body))?;
        let v = r.json();
        if r.status == 422 && v["field"] == field {
            return Ok(v);
        }
        Err(LabError::NotInvalid {
            addr: self.addr,
            request: format!("{method} {path} {body}"),
            field: field.to_string(),
            status: r.status,
            body: r.body,
        })
    }

    /// Waits until `GET /api/v1/health` answers and says cairnd's domains have finished
    /// starting (`"ready": true`), as [`Node::wait_ready`] does: after a reboot or a restart
    /// of cairnd, before domain routes are used. Returns the health JSON.
    pub fn wait_ready(&self, deadline: Deadline) -> Result<Value, LabError> {
        health::wait_domains(self.addr, deadline, Strictness::FailOnFailed, |d| {
            health::fetch(self.addr, Trust::Pinned(self.fingerprint), d)
        })
    }

    /// Poll `GET /api/v1/pools/{pool}` until `done` accepts it (returned), within
    /// `deadline`; `what` names the condition in the error.
    pub fn wait_pool(
        &self,
        pool: &str,
        what: &str,
        deadline: Deadline,
        done: impl FnMut(&Value) -> bool,
    ) -> Result<Value, LabError> {
        self.wait_for(&format!("/api/v1/pools/{pool}"), what, deadline, done)
    }

    /// Poll `GET path` until `done` accepts its JSON (returned), within `deadline`; `what`
    /// names the condition in the error.
    pub fn wait_for(
        &self,
        path: &str,
        what: &str,
        deadline: Deadline,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Value, LabError> {
        let mut last = String::from("no answer yet");
        while !deadline.expired() {
            match self.get(path) {
                Ok(r) if (200..300).contains(&r.status) => {
                    let v = r.json();
                    if done(&v) {
                        return Ok(v);
                    }
                    last = r.body;
                }
                Ok(r) => last = format!("HTTP {}: {}", r.status, r.body),
                Err(e) => last = e.to_string(),
            }
            // poll interval; the deadline bounds the whole wait
            std::thread::sleep(Duration::from_millis(300).min(deadline.remaining()));
        }
        Err(LabError::ApiTimeout {
            addr: self.addr,
            waited: deadline.total(),
            last: format!("waiting for {what}: {last}"),
        })
    }
}

/// The progress values a task passed through, in order, as [`ApiSession::wait_task`] kept
/// them under `"progress_seen"` (empty when the task reported none).
pub fn progress_seen(task: &Value) -> Vec<u64> {
    task["progress_seen"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn check(addr: SocketAddr, method: &str, path: &str, r: HttpResponse) -> Result<Value, LabError> {
    if (200..300).contains(&r.status) {
        Ok(r.json())
    } else {
        Err(LabError::ApiStatus {
            addr,
            method: method.to_string(),
            path: path.to_string(),
            status: r.status,
            body: r.body,
        })
    }
}

/// One unauthenticated (or setup-token) call during claiming.
fn setup_call(
    addr: SocketAddr,
    fp: Fingerprint,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: &Value,
) -> Result<HttpResponse, LabError> {
    let req = HttpRequest {
        method,
        path,
        headers,
        body: Some(body.to_string()),
    };
    https::request(addr, &req, Trust::Pinned(fp), Deadline::after(CALL_TIMEOUT))
}

impl Node {
    /// Claim the node through the setup API as an admin would, then create an API token.
    /// Waits for the API to answer and its domains to be ready first ([`Node::wait_ready`],
    /// within `deadline`).
    pub fn claim(&mut self, deadline: Deadline) -> Result<ApiSession, LabError> {
        self.wait_ready(deadline)?;
        self.claim_now(deadline)
    }

    /// Sign in as `admin` with `password` on a node set up another way (the setup wizard in
    /// a browser) and create an API token, as [`Node::claim`] ends.
    pub fn sign_in(&mut self, password: &str, deadline: Deadline) -> Result<ApiSession, LabError> {
        let fp = self.wait_setup(deadline)?.fingerprint;
        let addr = self.api_addr();
        let path = "/api/v1/auth/login";
        let body = json!({ "username": "admin", "password": password });
        let done = setup_call(addr, fp, "POST", path, vec![], &body)?;
        let cookie = done
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        let login = check(addr, "POST", path, done)?;
        let cookie = cookie.ok_or_else(|| LabError::HttpResponse {
            addr,
            detail: "sign-in without a session cookie".into(),
        })?;
        session_token(addr, fp, cookie, &login)
    }

    /// [`Node::claim`] without waiting for the domains (the caller has waited its own way,
    /// like the bench, which reports a failed domain instead of stopping).
    pub fn claim_now(&mut self, deadline: Deadline) -> Result<ApiSession, LabError> {
        let setup = self.wait_setup(deadline)?;
        let addr = self.api_addr();
        let fp = setup.fingerprint;
        let ok = |method: &str, path: &str, r: HttpResponse| check(addr, method, path, r);

        let path = "/api/v1/setup/code";
        let body = json!({ "code": setup.code });
        let answer = ok(
            "POST",
            path,
            setup_call(addr, fp, "POST", path, vec![], &body)?,
        )?;
        let setup_token = answer["setup_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let with_token = || vec![("X-Setup-Token".to_string(), setup_token.clone())];

        let name = self.name().to_string();
        for (path, body) in [
            (
                "/api/v1/setup/password",
                json!({ "password": LAB_PASSWORD }),
            ),
            ("/api/v1/setup/hostname", json!({ "hostname": name })),
            ("/api/v1/setup/timezone", json!({ "timezone": "UTC" })),
            // QEMU user networking's host address: keeps chronyd's traffic on the lab machine.
            ("/api/v1/setup/ntp", json!({ "servers": ["10.0.2.2"] })),
        ] {
            ok(
                "PUT",
                path,
                setup_call(addr, fp, "PUT", path, with_token(), &body)?,
            )?;
        }
        let path = "/api/v1/setup/complete";
        let mut done = setup_call(addr, fp, "POST", path, with_token(), &json!({}))?;
        if done.status == 409 && done.json()["field"] == "network" {
            // The node asks for its management network: keep DHCP on the NIC the API
            // answers on (the lab's management NIC).
            let npath = "/api/v1/setup/network";
            let body = json!({ "mode": "dhcp" });
            ok(
                "PUT",
                npath,
                setup_call(addr, fp, "PUT", npath, with_token(), &body)?,
            )?;
            done = setup_call(addr, fp, "POST", path, with_token(), &json!({}))?;
        }
        let cookie = done
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        let login = ok("POST", path, done)?;
        let cookie = cookie.ok_or_else(|| LabError::HttpResponse {
            addr,
            detail: "setup completed without a session cookie".into(),
        })?;
        session_token(addr, fp, cookie, &login)
    }
}

/// With a signed-in session (its cookie and the sign-in answer's CSRF token), create an API
/// token named `cairn-lab` and return a session using it.
fn session_token(
    addr: SocketAddr,
    fp: Fingerprint,
    cookie: String,
    login: &Value,
) -> Result<ApiSession, LabError> {
    let csrf = login["csrf_token"].as_str().unwrap_or_default().to_string();
    let path = "/api/v1/auth/tokens";
    let headers = vec![
        ("Cookie".to_string(), cookie),
        ("X-CSRF-Token".to_string(), csrf),
    ];
    let body = json!({ "name": "cairn-lab" });
    let created = check(
        addr,
        "POST",
        path,
        setup_call(addr, fp, "POST", path, headers, &body)?,
    )?;
    let token = created["token"]
        .as_str()
        .ok_or_else(|| LabError::HttpResponse {
            addr,
            detail: format!("token answer without a token: {created}"),
        })?
        .to_string();
    Ok(ApiSession::new(addr, fp, token))
}
