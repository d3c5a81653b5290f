//! The `CAIRN SETUP` block cairnd prints on the console at first boot: URL, fingerprint, setup code.

use cairn_client::Fingerprint;

/// Marker of the block's first line.
pub const SETUP_MARKER: &str = "CAIRN SETUP";
/// How many lines after the marker the fields may appear in.
pub const BLOCK_LINES: usize = 20;

/// What the setup block told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupInfo {
    pub urls: Vec<String>,
    pub fingerprint: Fingerprint,
    pub fingerprint_text: String,
    pub code: String,
}

/// Fields found so far while reading the block's lines.
#[derive(Debug, Default)]
pub struct SetupParser {
    urls: Vec<String>,
    fingerprint: Option<(Fingerprint, String)>,
    code: Option<String>,
}

impl SetupParser {
    /// Feeds one line of the block (the marker line itself included or not).
    pub fn feed(&mut self, line: &str) {
        if let Some(rest) = after_key(line, "URL:") {
            if let Some(url) = rest.split_whitespace().next() {
                if url.starts_with("https://") {
                    self.urls.push(url.to_string());
                }
            }
        } else if let Some(rest) = after_key(line, "Fingerprint:") {
            let text = rest.split_whitespace().next().unwrap_or("");
            if let Ok(fp) = text.parse::<Fingerprint>() {
                self.fingerprint = Some((fp, text.to_string()));
            }
        } else if let Some(rest) = after_key(line, "Setup code:") {
            if let Some(code) = rest.split_whitespace().next() {
                self.code = Some(code.to_string());
            }
        }
    }

    /// The complete block, once the fingerprint and the code were seen.
    pub fn finish(&self) -> Option<SetupInfo> {
        let (fingerprint, fingerprint_text) = self.fingerprint.clone()?;
        Some(SetupInfo {
            urls: self.urls.clone(),
            fingerprint,
            fingerprint_text,
            code: self.code.clone()?,
        })
    }
}

fn after_key<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.find(key).map(|i| line[i + key.len()..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_block() {
        let fp = Fingerprint([0xab; 32]);
        let block = format!(
            "CAIRN SETUP\n  URL: https://10.0.2.15/\n  URL: https://[fec0::5054:ff:fe12:3456]/\n  Fingerprint: {fp}\n  Setup code: 4K7P-9QX2\n"
        );
        let mut p = SetupParser::default();
        for l in block.lines() {
            p.feed(l);
        }
        let info = p.finish().unwrap();
        assert_eq!(
            info.urls,
            vec!["https://10.0.2.15/", "https://[fec0::5054:ff:fe12:3456]/"]
        );
        assert_eq!(info.fingerprint, fp);
        assert_eq!(info.code, "4K7P-9QX2");
    }

    #[test]
    fn incomplete_block_is_none() {
        let mut p = SetupParser::default();
        p.feed("CAIRN SETUP");
        p.feed("URL: https://10.0.2.15/");
        p.feed("URL: none (no network address within 30 s; check the cable and DHCP)");
        assert!(p.finish().is_none());
        assert_eq!(p.urls, vec!["https://10.0.2.15/"]);
        p.feed("Fingerprint: SHA256:garbage");
        p.feed("Setup code: 1234");
        assert!(p.finish().is_none());
    }
}
