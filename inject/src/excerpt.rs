//! Short quotes of user input for error messages: a bad token can be megabytes long, and an
//! error should name it, not echo it.

/// Longest token quoted whole, in characters.
const WHOLE: usize = 40;
/// How much of a longer token is quoted.
const HEAD: usize = 32;

/// `text` itself when short, else its first characters, `...` and its full length.
pub fn excerpt(text: &str) -> String {
    if text.chars().count() <= WHOLE {
        return text.to_string();
    }
    let head: String = text.chars().take(HEAD).collect();
    format!("{head}... ({} bytes)", text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_on_a_character_boundary() {
        assert_eq!(excerpt("0x9c00"), "0x9c00");
        let long = "é".repeat(1_000_000);
        let cut = excerpt(&long);
        assert_eq!(cut, format!("{}... (2000000 bytes)", "é".repeat(32)));
    }
}
