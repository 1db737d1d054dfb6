//! The kernel lines the suite runs on, pinned here so that what `rasdrill run` boots is decided
//! by the repository, not by whatever happens to be cached. A line is a Debian kernel series
//! (`6.1`, `6.12`); its pin is the exact package release the suite's golden files were made
//! with. Adding a line is one entry in [`LINES`].

/// One pinned kernel line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLine {
    /// The series, `major.minor` of the release (`6.1`).
    pub name: &'static str,
    /// The Debian release pinned for it (`uname -r`), fetched as
    /// `linux-image-<release>-unsigned`.
    pub release: &'static str,
}

/// Every pinned line, oldest first.
pub const LINES: &[KernelLine] = &[
    KernelLine {
        name: "6.1",
        release: "6.1.0-57-amd64",
    },
    // The newest 6.12 of Debian 12's archive (linux-image-6.12.118+deb12-amd64-unsigned,
    // 6.12.118-1~deb12u1). Its config has CONFIG_RAS_CEC=y: corrected memory errors reach the
    // collector before the decoders (docs/scenarios.md, "Kernel lines").
    KernelLine {
        name: "6.12",
        release: "6.12.118+deb12-amd64",
    },
];

/// The line a plain `rasdrill run` boots.
pub const DEFAULT_LINE: &str = "6.1";

/// The default line's entry.
pub fn default_line() -> &'static KernelLine {
    by_name(DEFAULT_LINE).expect("DEFAULT_LINE is one of LINES")
}

/// The pinned line called `name` (`6.1`).
pub fn by_name(name: &str) -> Option<&'static KernelLine> {
    LINES.iter().find(|l| l.name == name)
}

/// The series a release belongs to: `6.1.0-57-amd64` -> `6.1`, `6.12.115+deb12-amd64` ->
/// `6.12`; `None` for what is not a kernel release (a stand-in tree).
pub fn line_of(release: &str) -> Option<String> {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    match (numbers.next(), numbers.next()) {
        (Some(major), Some(minor)) if !major.is_empty() && !minor.is_empty() => {
            Some(format!("{major}.{minor}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pin_belongs_to_its_line_and_the_default_is_pinned() {
        for line in LINES {
            assert_eq!(
                line_of(line.release).as_deref(),
                Some(line.name),
                "{line:?}"
            );
        }
        assert_eq!(default_line().name, DEFAULT_LINE);
        assert_eq!(line_of("6.12.115+deb12-amd64").as_deref(), Some("6.12"));
        assert_eq!(line_of("none (a stand-in tree)"), None);
        assert_eq!(by_name("5.10"), None);
    }
}
