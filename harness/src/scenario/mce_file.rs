//! The records of an mce-inject file (`inject: {file: x.mce}`): the one place that calls the
//! language parser.

use std::path::Path;

use rasdrill_inject::{mcelang, MceRecord};

use super::yaml::Loc;

/// Why a file's records could not be read: where in that file (line 0 if nowhere), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileProblem {
    pub loc: Loc,
    pub message: String,
}

/// Every record of the file, each with the line it starts on.
pub(crate) fn read_records(path: &Path) -> Result<Vec<(Loc, MceRecord)>, FileProblem> {
    let text = mcelang::read_file(path).map_err(|e| FileProblem {
        loc: Loc::default(),
        message: match e {
            mcelang::ReadError::Io { source, .. } => {
                format!("cannot read the mce-inject file: {source}")
            }
            too_big => too_big.to_string(),
        },
    })?;
    let records =
        mcelang::parse_with_lines(&text, &path.display().to_string()).map_err(|e| FileProblem {
            loc: Loc {
                line: e.line as u64,
                column: e.column as u64,
            },
            message: e.message,
        })?;
    if records.is_empty() {
        return Err(FileProblem {
            loc: Loc::default(),
            message: "the file holds no records".into(),
        });
    }
    Ok(records
        .into_iter()
        .map(|(line, r)| {
            (
                Loc {
                    line: line as u64,
                    column: 1,
                },
                r,
            )
        })
        .collect())
}
