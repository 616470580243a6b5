//! Names from a bundle, a registry or an RPM header, made safe to print: a crafted name
//! must not move the cursor, erase the error line or print a fake "verified" one.

use std::fmt;

/// Displays a string with control characters (C0, DEL, C1) and the Unicode bidi and
/// line controls escaped (`\x1b`, `\u{202e}`); everything else as it is.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                c if (c as u32) < 0x100 && c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

/// Text of several lines (an error message, a hint) with control characters escaped and
/// its line breaks kept: the last guard, where it is printed, for a name that no library
/// escaped when it put it into a message.
pub fn shown_text(s: &str) -> String {
    s.split('\n').map(shown).collect::<Vec<_>>().join("\n")
}

/// [`Shown`] as an owned string.
pub fn shown(s: &str) -> String {
    Shown(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            shown("a\x1b[2K\rverified ✓\u{202e}"),
            "a\\x1b[2K\\x0dverified ✓\\u{202e}"
        );
        assert_eq!(shown("files/calico.yaml"), "files/calico.yaml");
    }
}
