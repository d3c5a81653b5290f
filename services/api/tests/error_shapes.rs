//! Error answers over real HTTPS under abuse: a value of the wrong type names its field and
//! says what was expected; a huge rejected value comes back cut, not echoed in full.

mod common;

use cairn_client::{ClientRequest, ClientResponse};
use common::{cookie_of, set_up, start, Running, CODE};
use hyper::Method;
use serde_json::{json, Value};

/// Almost the largest body the API takes (64 KiB).
const HUGE: usize = 65_000;

/// (status, code, field, message) of an error answer.
fn shape(r: &ClientResponse) -> (u16, String, Value, String) {
    let v = r.json();
    (
        r.status.as_u16(),
        v["code"].as_str().unwrap_or_default().to_string(),
        v["field"].clone(),
        v["message"].as_str().unwrap_or_default().to_string(),
    )
}

async fn setup_token(s: &Running) -> String {
    let r = s
        .call(ClientRequest::new(Method::POST, "/api/v1/setup/code").json(&json!({ "code": CODE })))
        .await;
    assert_eq!(r.status, 200);
    r.json()["setup_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn type_errors_name_their_field_and_huge_values_come_back_cut() {
    let s = start().await;
    let token = setup_token(&s).await;
    let hostname = |body: Value| {
        ClientRequest::new(Method::PUT, "/api/v1/setup/hostname")
            .header("x-setup-token", &token)
            .json(&body)
    };

    // A number where a string belongs: 400, the field named, what was expected said.
    let (status, code, field, message) = shape(&s.call(hostname(json!({"hostname": 12345}))).await);
    assert_eq!(
        (status, code.as_str(), field),
        (400, "bad_request", json!("hostname"))
    );
    assert!(message.contains("expected a string"), "{message}");
    assert!(message.contains("12345"), "{message}");

    // A 65 KB hostname: refused, and the message shows it cut to 100 characters with `…`.
    let long = "x".repeat(HUGE);
    let r = s.call(hostname(json!({ "hostname": long }))).await;
    let raw = r.body.len();
    let (status, code, field, message) = shape(&r);
    assert_eq!(
        (status, code.as_str(), field),
        (422, "invalid", json!("hostname"))
    );
    assert!(raw < 1000, "the answer is {raw} bytes: {message}");
    assert!(
        message.contains(&format!("\"{}…\"", "x".repeat(100))),
        "{message}"
    );

    // A 65 KB string where a number belongs (serde's message quotes it): cut as well.
    // Finish setup (the code again, then every step) so the signed-in routes answer.
    let (_, set_up_done) = set_up(&s).await;
    let cookie = cookie_of(&set_up_done);
    let csrf = set_up_done.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let email = |body: Value| {
        ClientRequest::new(Method::PUT, "/api/v1/alerts/channels/email")
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
    };
    let base = json!({
        "host": "smtp.example.org", "from": "nas@example.org", "to": ["ops@example.org"]
    });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let (status, code, field, message) = shape(&s.call(email(with("port", json!(70000)))).await);
    assert_eq!(
        (status, code.as_str(), field),
        (400, "bad_request", json!("port"))
    );
    assert!(
        message.contains("expected an integer from 0 to 65535"),
        "{message}"
    );
    let r = s.call(email(with("port", json!("9".repeat(HUGE))))).await;
    let raw = r.body.len();
    let (status, _, field, message) = shape(&r);
    assert_eq!((status, field), (400, json!("port")));
    assert!(raw < 1000, "the answer is {raw} bytes: {message}");
    assert!(
        message.contains(&format!("{}…", "9".repeat(100))),
        "{message}"
    );
    // A 65 KB recipient: refused at its index, cut.
    let r = s
        .call(email(with(
            "to",
            json!([format!("{}@example.org", "o".repeat(HUGE))]),
        )))
        .await;
    let raw = r.body.len();
    let (status, _, field, message) = shape(&r);
    assert_eq!((status, field), (422, json!("to[0]")));
    assert!(raw < 1000, "the answer is {raw} bytes: {message}");
    assert!(message.contains('…'), "{message}");
    s.stop().await;
}
