//! Route types and path matching: the leaf that every resource file's route table uses.

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, at any time (health, the spec, time zone names, the web UI's files).
    Public,
    /// Anyone while the node is not set up (the setup steps check the setup token).
    Setup,
    /// Anyone once the node is set up (login).
    Login,
    /// A signed-in user (session cookie plus CSRF token, or an API token).
    User,
}

/// One resource: its path pattern (`{name}` matches one segment) and its methods, each with
/// the operation `O` it means (a resource file's own op type, or the router's `Op`).
#[derive(Debug)]
pub struct Route<O: 'static> {
    pub path: &'static str,
    pub methods: &'static [(&'static str, O)],
    pub allowed: &'static [&'static str],
}

/// Match a path against a pattern; returns the parameter segments, in order.
pub fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut param = Vec::new();
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(param),
            (Some(pp), Some(ss)) if pp.starts_with('{') && pp.ends_with('}') => {
                if ss.is_empty() {
                    return None;
                }
                param.push(ss.to_string());
            }
            (Some(pp), Some(ss)) if pp == ss => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_parameters_are_captured_in_order() {
        assert_eq!(
            matches("/a/{x}/b/{y}", "/a/1/b/2"),
            Some(vec!["1".to_string(), "2".to_string()])
        );
        assert_eq!(matches("/a/{x}/b/{y}", "/a/1/c/2"), None);
    }
}
