//! The output of `cairn-init svc status --json` on a node, read tolerantly.

use serde_json::Value;

/// One supervised service as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    pub state: String,
    pub pid: Option<i64>,
    pub restarts: u64,
    /// Signal of the last exit, if the process was killed by one.
    pub last_exit_signal: Option<i64>,
}

/// Parses a JSON array of services, `{"services": [...]}`, or a map of name → service.
pub fn parse(json: &str) -> Result<Vec<ServiceState>, String> {
    let v: Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("not JSON ({e}): {json}"))?;
    let entries: Vec<(Option<String>, Value)> = match v {
        Value::Array(items) => items.into_iter().map(|i| (None, i)).collect(),
        Value::Object(mut map) => match map.remove("services") {
            Some(Value::Array(items)) => items.into_iter().map(|i| (None, i)).collect(),
            Some(Value::Object(m)) => m.into_iter().map(|(k, v)| (Some(k), v)).collect(),
            Some(other) => return Err(format!("\"services\" is not a list: {other}")),
            None => map.into_iter().map(|(k, v)| (Some(k), v)).collect(),
        },
        other => return Err(format!("not a list of services: {other}")),
    };
    entries
        .into_iter()
        .map(|(key, obj)| {
            let name = obj["name"]
                .as_str()
                .map(str::to_string)
                .or(key)
                .ok_or_else(|| format!("service without a name: {obj}"))?;
            let state = match &obj["state"] {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                other => return Err(format!("service {name}: state is {other}")),
            };
            let restarts = obj
                .get("restarts")
                .or_else(|| obj.get("restart_count"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Ok(ServiceState {
                name,
                state,
                pid: obj["pid"].as_i64(),
                restarts,
                last_exit_signal: obj["last_exit"]["signal"].as_i64(),
            })
        })
        .collect()
}

/// The service called `name`.
pub fn find<'a>(services: &'a [ServiceState], name: &str) -> Option<&'a ServiceState> {
    services.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_init_format() {
        let json = r#"[{"name":"journald","state":"ready","pid":52,"restarts":0,"uptime_s":3,"last_exit":null,"reason":null},
                      {"name":"cairnd","state":"backing-off","pid":null,"restarts":2,"uptime_s":null,"last_exit":{"signal":9,"at":1},"reason":null}]"#;
        let s = parse(json).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(find(&s, "journald").unwrap().pid, Some(52));
        let c = find(&s, "cairnd").unwrap();
        assert_eq!(c.state, "backing-off");
        assert_eq!(c.restarts, 2);
        assert_eq!(c.pid, None);
        assert_eq!(c.last_exit_signal, Some(9));
        assert_eq!(find(&s, "journald").unwrap().last_exit_signal, None);
    }

    #[test]
    fn parses_wrapped_and_mapped_forms() {
        let s = parse(r#"{"services":[{"name":"udevd","state":"ready","pid":7,"restarts":1}]}"#)
            .unwrap();
        assert_eq!(s[0].restarts, 1);
        let s = parse(r#"{"udevd":{"state":"ready","pid":7,"restart_count":4}}"#).unwrap();
        assert_eq!(s[0].name, "udevd");
        assert_eq!(s[0].restarts, 4);
        assert!(parse("oops").is_err());
        assert!(parse("[1]").is_err());
    }
}
