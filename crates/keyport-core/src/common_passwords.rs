//! The offline list of common passwords a new password may not be (see
//! `data/README.md` for its source and licence).
//!
//! The list is embedded sorted, one lowercase password per line, and
//! searched in place: a lookup allocates nothing beyond the lowercased
//! candidate, and the memory it takes never grows.

/// 96,518 lines: the 100,000 most common passwords, case folded.
const LIST: &str = include_str!("../data/common-passwords.txt");

/// Whether `password`, compared without case, is on the list.
pub fn is_common(password: &str) -> bool {
    is_listed(&password.to_lowercase())
}

/// Whether `folded`, already lowercase, is on the list.
pub(crate) fn is_listed(folded: &str) -> bool {
    contains(LIST, folded)
}

/// Binary search for a whole line equal to `needle` in `list`, a text of
/// lines sorted by byte, each ending in `\n`.
fn contains(list: &str, needle: &str) -> bool {
    let bytes = list.as_bytes();
    let (mut low, mut high) = (0, bytes.len());
    // Invariant: `low` is a line start; every line starting before `low` is
    // smaller than `needle`, and every line starting at or after `high` is
    // greater.
    while low < high {
        // Never before `low`: the byte before `low` ends a line.
        let middle = line_start(bytes, low + (high - low) / 2);
        let end = bytes[middle..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |at| middle + at);
        match bytes[middle..end].cmp(needle.as_bytes()) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => low = end + 1,
            std::cmp::Ordering::Greater => high = middle,
        }
    }
    false
}

/// The start of the line that holds byte `at`.
fn line_start(bytes: &[u8], at: usize) -> usize {
    bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |newline| newline + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_unique_lowercase_and_long_enough() {
        let lines: Vec<&str> = LIST.lines().collect();
        assert!(lines.len() > 95_000, "{}", lines.len());
        assert!(lines.windows(2).all(|pair| pair[0].as_bytes() < pair[1].as_bytes()), "sorted and unique");
        assert!(lines.iter().all(|line| !line.is_empty() && line.to_lowercase() == *line));
        assert!(LIST.ends_with('\n'));
    }

    #[test]
    fn finds_every_line_and_nothing_between_them() {
        // Every entry is found, and a string just past each one is not
        // (unless that is the next entry), so the search never skips a line.
        let lines: Vec<&str> = LIST.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            assert!(contains(LIST, line), "{line:?}");
            let after = format!("{line}\u{0}");
            assert_eq!(contains(LIST, &after), lines.get(index + 1) == Some(&after.as_str()), "{after:?}");
        }
    }

    #[test]
    fn common_passwords_are_found_without_case() {
        for common in ["password", "123456789", "Qwerty123", "ILOVEYOU", "letmein1", "dragon"] {
            assert!(is_common(common), "{common}");
        }
        for rare in ["correct horse battery staple", "", "x", "ẞtrange", "tr0ub4dor&3-but-longer"] {
            assert!(!is_common(rare), "{rare}");
        }
    }

    #[test]
    fn edges_of_a_small_list() {
        let list = "b\nd\nf\n";
        for (needle, expected) in [("a", false), ("b", true), ("c", false), ("d", true), ("e", false), ("f", true)] {
            assert_eq!(contains(list, needle), expected, "{needle}");
        }
        assert!(!contains(list, "g"));
        assert!(!contains("", "a"));
        assert!(!contains(list, ""));
    }
}
