//! Text that came from a server (reply and error messages, banners, file
//! names), made safe to print: control characters are shown escaped
//! (`\n`, `\u{1b}`, …) so that a hostile server cannot move the cursor,
//! rewrite earlier lines or forge log lines on the user's terminal. Other
//! characters, UTF-8 included, are kept as they are.

use std::borrow::Cow;

/// `text` with every control character escaped as Rust escapes it.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Bytes from the server as printable text: invalid UTF-8 replaced, control
/// characters escaped.
pub fn printable(bytes: &[u8]) -> String {
    escape_controls(&String::from_utf8_lossy(bytes)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_controls("530 Login incorrect."),
            "530 Login incorrect."
        );
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(escape_controls("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape_controls("nul\0"), "nul\\u{0}");
        assert_eq!(escape_controls("del\u{7f}"), "del\\u{7f}");
        // C1 controls (a one-character CSI) too.
        assert_eq!(escape_controls("\u{9b}31m"), "\\u{9b}31m");
        // Ordinary UTF-8 and backslashes pass unchanged.
        assert_eq!(escape_controls("Grüße 日本 \\"), "Grüße 日本 \\");
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let once = escape_controls("x\u{1b}]0;title\u{7}y").into_owned();
        assert_eq!(escape_controls(&once), once);
        assert!(!once.chars().any(char::is_control));
    }

    #[test]
    fn bytes_are_made_printable() {
        assert_eq!(printable(b"550 \xff\x1b[1m"), "550 \u{fffd}\\u{1b}[1m");
    }
}
