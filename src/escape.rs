//! Text from outside on its way to a terminal.
//!
//! Archive entry names, tar header fields, file names, manifest strings, a command's name: any
//! of them can hold ESC or BEL, which a terminal obeys (set the window title, clear the screen,
//! fake a line of output), or bytes that are not UTF-8. Every message is made printable here
//! before it is written, by one rule: control characters (C0, DEL, C1), the bidirectional
//! overrides that reorder what is shown, and invalid UTF-8 become visible escapes (`\x1b`,
//! `\u{202e}`, `\xff`). A backslash is left as it is, so escaping twice changes nothing: a name
//! escaped where it is put in a message is not garbled when the whole message is escaped again
//! on its way out.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Something that can be shown escaped: its raw bytes.
pub trait Raw {
    fn raw(&self) -> &[u8];
}

impl Raw for [u8] {
    fn raw(&self) -> &[u8] {
        self
    }
}

impl Raw for str {
    fn raw(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Raw for OsStr {
    fn raw(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Raw for Path {
    fn raw(&self) -> &[u8] {
        self.as_os_str().as_bytes()
    }
}

impl<T: Raw + ?Sized> Raw for &T {
    fn raw(&self) -> &[u8] {
        (**self).raw()
    }
}

impl Raw for String {
    fn raw(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Raw for std::path::PathBuf {
    fn raw(&self) -> &[u8] {
        self.as_os_str().as_bytes()
    }
}

impl Raw for Vec<u8> {
    fn raw(&self) -> &[u8] {
        self
    }
}

/// A name, path or value from outside, to be put in a message: every control character is
/// escaped, line breaks and tabs included (a name cannot start a line of its own).
pub fn escaped<T: Raw + ?Sized>(text: &T) -> Escaped<'_> {
    Escaped {
        bytes: text.raw(),
        keep_lines: false,
    }
}

/// A whole message on its way out: as [`escaped`], but its own line breaks and tabs stay.
pub fn printable(message: &str) -> Cow<'_, str> {
    if message
        .chars()
        .all(|c| c == '\n' || c == '\t' || !hidden(c))
    {
        return Cow::Borrowed(message);
    }
    Cow::Owned(
        Escaped {
            bytes: message.as_bytes(),
            keep_lines: true,
        }
        .to_string(),
    )
}

/// Text shown where byte offsets must stay as they are (the manifest under a diagnostic, whose
/// labels are byte ranges): each hidden character becomes as many `?` as it has bytes.
pub fn same_width(text: &str) -> Cow<'_, str> {
    let shown = |(i, c): (usize, char)| match c {
        '\n' | '\t' => false,
        // A CR of a CRLF line end is a line end; a lone one returns to the start of the line.
        '\r' => text.as_bytes().get(i + 1) != Some(&b'\n'),
        c => hidden(c),
    };
    if !text.char_indices().any(shown) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.char_indices()
            .map(|(i, c)| {
                if shown((i, c)) {
                    "?".repeat(c.len_utf8())
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Characters a terminal acts on or that change how the text around them is shown.
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// See [`escaped`].
#[derive(Clone, Copy)]
pub struct Escaped<'a> {
    bytes: &'a [u8],
    keep_lines: bool,
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\n' | '\t' if self.keep_lines => f.write_char(c)?,
                    '\0' => f.write_str("\\0")?,
                    '\t' => f.write_str("\\t")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    c if hidden(c) && (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32)?,
                    c if hidden(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                    c => f.write_char(c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_invalid_utf8_become_visible() {
        let hostile = b"a\x1b]0;title\x07b\x1b[2J\xff\xfe c\x7f\xc2\x9b\xe2\x80\xaed\0e\n";
        assert_eq!(
            escaped(&hostile[..]).to_string(),
            "a\\x1b]0;title\\x07b\\x1b[2J\\xff\\xfe c\\x7f\\u{9b}\\u{202e}d\\0e\\n"
        );
        assert_eq!(
            escaped("plain, ünïcode \\ ok").to_string(),
            "plain, ünïcode \\ ok"
        );
        assert_eq!(escaped(Path::new("/tmp/x\ty")).to_string(), "/tmp/x\\ty");
    }

    #[test]
    fn a_message_keeps_its_lines_and_escaping_twice_changes_nothing() {
        let message = "line one\n\tline two \u{1b}[31mred\u{7}";
        let once = printable(message);
        assert_eq!(once, "line one\n\tline two \\x1b[31mred\\x07");
        assert_eq!(printable(&once), once);
        assert!(matches!(printable("clean\n"), Cow::Borrowed(_)));
        let name = escaped("a\u{1b}b").to_string();
        assert_eq!(printable(&format!("entry \"{name}\"")), "entry \"a\\x1bb\"");
    }

    #[test]
    fn same_width_keeps_every_offset() {
        let text = "a = \"\u{1b}\u{9b}\u{202e}\"\r\nb\rc\n";
        let shown = same_width(text);
        assert_eq!(shown, "a = \"??????\"\r\nb?c\n");
        assert_eq!(shown.len(), text.len());
        assert!(matches!(same_width("x = 1\r\n"), Cow::Borrowed(_)));
    }
}
