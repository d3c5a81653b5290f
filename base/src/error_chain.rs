//! One line for an error and every error beneath it, for logs and API messages.

/// An error and its sources joined by `: `, outermost first
/// (`cannot connect to mx:25: refused`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot connect to mx:25")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn joins_every_source_outermost_first() {
        let e = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&e), "cannot connect to mx:25: refused");
        assert_eq!(error_chain(&std::io::Error::other("alone")), "alone");
    }
}
