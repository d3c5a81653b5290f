//! `GET/PUT /api/v1/time` over real HTTPS: setup applies the time settings, later changes are
//! validated before anything is applied, and a failed apply puts the old settings back.

mod common;

use cairn_client::ClientRequest;
use common::{cookie_of, set_up, start};
use hyper::Method;
use serde_json::json;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn time_settings_are_applied_validated_and_rolled_back() {
    let s = start().await;
    let (_, done) = set_up(&s).await;
    let cookie = cookie_of(&done);
    let csrf = done.json()["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(
        *s.system.applied.lock().unwrap(),
        vec![("UTC".to_string(), vec!["10.0.2.2".to_string()])],
        "setup applied its time settings"
    );
    let get = || ClientRequest::new(Method::GET, "/api/v1/time").header("cookie", &cookie);
    let put = |body: serde_json::Value| {
        ClientRequest::new(Method::PUT, "/api/v1/time")
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
    };
    let r = s.call(get()).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (v["timezone"].clone(), v["ntp_servers"].clone()),
        (json!("UTC"), json!(["10.0.2.2"]))
    );
    assert_eq!(
        v["clock"]["managed"], false,
        "the test system runs no chronyd"
    );
    assert!(v["now"].as_u64().unwrap() > 1_700_000_000);

    // Bad input names the field and changes nothing.
    for (body, status, field) in [
        (json!({"timezone": "../etc/passwd"}), 422, json!("timezone")),
        (
            json!({"ntp_servers": ["ok.org", "not a host"]}),
            422,
            json!("ntp_servers[1]"),
        ),
        (json!({"timezone": "UTC", "extra": 1}), 400, json!("extra")),
        (json!(["UTC"]), 400, json!(null)),
    ] {
        let r = s.call(put(body.clone())).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (status, field),
            "{body}"
        );
    }
    assert_eq!(s.system.applied.lock().unwrap().len(), 1, "nothing applied");

    // A change is applied, stored and shown.
    let r = s
        .call(put(
            json!({"timezone": "Europe/Berlin", "ntp_servers": ["10.0.2.2", "pool.ntp.org"]}),
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["timezone"], "Europe/Berlin");
    let stored = std::fs::read_to_string(s.dir.path().join("node.json")).unwrap();
    assert!(
        stored.contains("Europe/Berlin") && stored.contains("pool.ntp.org"),
        "{stored}"
    );
    assert_eq!(
        s.system.applied.lock().unwrap().last().unwrap(),
        &(
            "Europe/Berlin".to_string(),
            vec!["10.0.2.2".to_string(), "pool.ntp.org".to_string()]
        )
    );
    // Only the zone: the servers stay.
    let r = s.call(put(json!({"timezone": "UTC"}))).await;
    assert_eq!(r.json()["ntp_servers"], json!(["10.0.2.2", "pool.ntp.org"]));

    // Applying fails: an error, the previous settings applied again, nothing stored.
    s.system.fail_time.store(true, Ordering::SeqCst);
    let before = s.system.applied.lock().unwrap().len();
    let r = s.call(put(json!({"ntp_servers": []}))).await;
    assert_eq!(r.status, 500);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("chronyd did not restart"));
    let applied = s.system.applied.lock().unwrap().clone();
    assert_eq!(
        applied.len(),
        before + 2,
        "the new settings, then the old ones again"
    );
    assert_eq!(
        applied[before + 1].1,
        vec!["10.0.2.2".to_string(), "pool.ntp.org".to_string()]
    );
    s.system.fail_time.store(false, Ordering::SeqCst);
    let r = s.call(get()).await;
    assert_eq!(r.json()["ntp_servers"], json!(["10.0.2.2", "pool.ntp.org"]));

    // Without a session nothing is shown.
    let r = s
        .call(ClientRequest::new(Method::GET, "/api/v1/time"))
        .await;
    assert_eq!(r.status, 401);
    s.stop().await;
}
