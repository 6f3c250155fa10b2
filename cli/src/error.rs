//! Why a `wxpush` command did not succeed, and so its exit code: 0 done, 1 refused or
//! failed, 2 bad usage.

use crate::client::ApiFailure;

/// Why a command did not succeed, and so its exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    /// The command line or a file it names is wrong: exit 2.
    Usage(String),
    /// wxpush (or AWS) refused, or could not be reached: exit 1.
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<String> for CliError {
    fn from(m: String) -> CliError {
        CliError::Failed(m)
    }
}

impl From<ApiFailure> for CliError {
    fn from(f: ApiFailure) -> CliError {
        CliError::Failed(format!("refused: {f}"))
    }
}
