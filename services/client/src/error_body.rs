//! The body of every API error answer: `{"code":…,"message":…,"field":…}`.

use serde::{Deserialize, Serialize};

/// What an API error answer carries, as the server writes it and clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `invalid`, `csrf`.
    pub code: String,
    /// What is wrong and how to fix it, for people.
    pub message: String,
    /// The request field at fault, when there is one (`null` otherwise).
    #[serde(default)]
    pub field: Option<String>,
}

impl ErrorBody {
    /// The error in a JSON answer; `None` when the answer is not one (a proxy's page, an
    /// empty body, a success).
    pub fn from_json(value: &serde_json::Value) -> Option<ErrorBody> {
        ErrorBody::deserialize(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_with_and_without_a_field_and_writes_the_same_shape() {
        let v = json!({"code": "invalid", "message": "type the name", "field": "confirm"});
        let e = ErrorBody::from_json(&v).unwrap();
        assert_eq!(e.field.as_deref(), Some("confirm"));
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
        let e = ErrorBody::from_json(&json!({"code": "not_found", "message": "no disk"})).unwrap();
        assert_eq!(e.field, None);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"not_found","message":"no disk","field":null}"#
        );
        assert_eq!(ErrorBody::from_json(&serde_json::Value::Null), None);
        assert_eq!(ErrorBody::from_json(&json!({"status": "ok"})), None);
    }
}
