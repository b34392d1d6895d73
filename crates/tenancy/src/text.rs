//! The one rule every piece of free text from outside obeys, whatever field it lands in
//! (names, phones, committees, role and key names, branding, filters, spreadsheet cells):
//! no control characters but tab, line feed and carriage return. A NUL byte in
//! particular is refused here, at the parser, rather than by the database deep inside a
//! write (PostgreSQL rejects it in `text`, SQLite stores it and truncates on read).
//! Fields with stricter rules (a person's name takes no line breaks) add theirs.

/// Whether `c` is refused in free text: a Unicode control character (C0, DEL, C1) other
/// than `\t`, `\n` and `\r`.
#[must_use]
pub const fn is_forbidden(c: char) -> bool {
    matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// The first refused character of `s` (see [`is_forbidden`]), if any.
#[must_use]
pub fn first_forbidden(s: &str) -> Option<char> {
    s.chars().find(|&c| is_forbidden(c))
}

/// The message every edge gives for a refused character.
#[must_use]
pub fn forbidden_message(c: char) -> String {
    format!(
        "control characters are not allowed (found U+{:04X})",
        u32::from(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_but_tab_and_line_breaks_are_refused() {
        for c in [
            '\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}',
        ] {
            assert!(is_forbidden(c), "{c:?}");
        }
        for c in ['\t', '\n', '\r', ' ', 'a', 'é', '李', '\u{a0}', '\u{200b}'] {
            assert!(!is_forbidden(c), "{c:?}");
        }
        // Exactly Unicode's `Cc` category, less the three kept.
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            assert_eq!(
                is_forbidden(c),
                c.is_control() && !matches!(c, '\t' | '\n' | '\r'),
                "{c:?}"
            );
        }
        assert_eq!(first_forbidden("Ann\0e"), Some('\0'));
        assert_eq!(first_forbidden("Anne\r\n"), None);
        assert_eq!(
            forbidden_message('\0'),
            "control characters are not allowed (found U+0000)"
        );
    }
}
