//! The cap on what one collector may return: output beyond it fails the scenario clearly instead
//! of filling memory, golden files and diffs (a decoder stuck in a loop, a command that prints
//! a whole file).

use super::{CollectError, Collected, Collector, GuestNeeds};
use crate::target::Target;

/// A collector whose every output is checked against `limit`.
pub struct Limited {
    inner: Box<dyn Collector>,
    limit: usize,
}

impl Limited {
    pub fn new(inner: Box<dyn Collector>, limit: usize) -> Limited {
        Limited { inner, limit }
    }

    fn check(&self, got: Collected) -> Result<Collected, CollectError> {
        // Each line's newline counts: this is the size of the text compared.
        let bytes: usize = got.lines.iter().map(|l| l.len() + 1).sum();
        if bytes > self.limit {
            return Err(CollectError::failed(
                self.inner.name(),
                format!(
                    "its output is {bytes} bytes ({} lines), over the limit of {} bytes \
                     (a scenario raises it with `output_limit_kib:`, at most {} KiB)",
                    got.lines.len(),
                    self.limit,
                    crate::scenario::MAX_OUTPUT_LIMIT_KIB,
                ),
            ));
        }
        Ok(got)
    }
}

impl Collector for Limited {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn guest_needs(&mut self, progress: &mut dyn FnMut(&str)) -> Result<GuestNeeds, CollectError> {
        self.inner.guest_needs(progress)
    }

    fn start(
        &mut self,
        target: &mut dyn Target,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), CollectError> {
        self.inner.start(target, progress)
    }

    fn collect(&mut self, target: &mut dyn Target) -> Result<Collected, CollectError> {
        let got = self.inner.collect(target)?;
        self.check(got)
    }

    fn stop(&mut self, target: &mut dyn Target) -> Result<(), CollectError> {
        self.inner.stop(target)
    }

    fn collect_after_panic(&mut self, console: &str) -> Result<Collected, CollectError> {
        let got = self.inner.collect_after_panic(console)?;
        self.check(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns whatever it is given.
    struct Fixed(Vec<String>);

    impl Collector for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn start(
            &mut self,
            _: &mut dyn Target,
            _: &mut dyn FnMut(&str),
        ) -> Result<(), CollectError> {
            Ok(())
        }
        fn collect(&mut self, _: &mut dyn Target) -> Result<Collected, CollectError> {
            Ok(Collected {
                lines: self.0.clone(),
                records: self.0.len(),
                ..Default::default()
            })
        }
        fn stop(&mut self, _: &mut dyn Target) -> Result<(), CollectError> {
            Ok(())
        }
        fn collect_after_panic(&mut self, _: &str) -> Result<Collected, CollectError> {
            self.collect(&mut Nowhere)
        }
    }

    /// A target no request reaches (the collector above asks it nothing).
    struct Nowhere;

    impl Target for Nowhere {
        fn request(
            &mut self,
            what: &str,
            _: crate::agent::protocol::Request,
            _: std::time::Duration,
        ) -> Result<crate::agent::protocol::Reply, crate::target::TargetError> {
            Err(crate::target::TargetError::Refused {
                what: what.to_string(),
                message: "no target".into(),
            })
        }
    }

    #[test]
    fn output_up_to_the_limit_passes_and_a_byte_more_fails() {
        // Two lines of 4 bytes: 10 bytes with their newlines.
        let lines = vec!["abcd".to_string(), "efgh".to_string()];
        let mut target = Nowhere;
        let mut ok = Limited::new(Box::new(Fixed(lines.clone())), 10);
        assert_eq!(ok.collect(&mut target).unwrap().lines, lines);
        let mut over = Limited::new(Box::new(Fixed(lines)), 9);
        let err = over.collect(&mut target).unwrap_err().to_string();
        assert_eq!(
            err,
            "collector `fixed`: its output is 10 bytes (2 lines), over the limit of 9 bytes \
             (a scenario raises it with `output_limit_kib:`, at most 65536 KiB)"
        );
        let err = over.collect_after_panic("").unwrap_err().to_string();
        assert!(err.contains("over the limit of 9 bytes"), "{err}");
    }
}
