//! What is wrong with a scenario: every problem, each with its file, line, column and field.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Loc;

/// One problem in one file, rendered as one paragraph:
/// `scenarios/x.yaml:12:7: steps[1].inject.bank: 40 is out of range (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub loc: Loc,
    /// The field's path in the scenario, e.g. `steps[1].inject.bank`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.loc.line > 0 {
            write!(f, ":{}:{}", self.loc.line, self.loc.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while loading scenarios, in file then line order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    pub problems: Vec<Problem>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Collects the problems of one file while it is read.
#[derive(Debug)]
pub(crate) struct Problems {
    file: PathBuf,
    list: Vec<Problem>,
}

impl Problems {
    pub fn new(file: &Path) -> Self {
        Problems {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }

    pub fn add(&mut self, loc: Loc, field: &str, message: impl Into<String>) {
        self.list.push(Problem {
            file: self.file.clone(),
            loc,
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// A problem found in another file (an mce-inject file a scenario names).
    pub fn add_in(&mut self, file: &Path, loc: Loc, field: &str, message: impl Into<String>) {
        self.list.push(Problem {
            file: file.to_path_buf(),
            loc,
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}
