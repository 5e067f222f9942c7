//! What a run reports: one [`CheckResult`] per check and the [`Report`] of them all.

use std::fmt;

use crate::checks::{self, CheckDef};
use crate::ctx::{Failure, Verdict};

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server did what the check expects; `note` says how, when that varies.
    Passed {
        /// Which of the accepted behaviours the server showed, or what it announced.
        note: Option<String>,
    },
    /// The server did something the check does not accept.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// The check could not run against this target.
    Skipped {
        /// What is missing, such as `needs --ws`.
        reason: String,
    },
}

/// A check's id and what it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInfo {
    /// Dotted id, such as `heartbeat.idle-close`; `--filter` matches substrings of it.
    pub id: &'static str,
    /// One sentence: what the server must do.
    pub description: &'static str,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Which check this is.
    pub check: CheckInfo,
    /// How it ended.
    pub outcome: Outcome,
}

/// Returns every check of the suite, in the order they are reported.
pub fn checks() -> Vec<CheckInfo> {
    checks::all().iter().map(CheckInfo::from).collect()
}

/// Returns the width of the id column: the longest check id.
fn id_width() -> usize {
    checks::all().iter().map(|c| c.id.len()).max().unwrap_or(0)
}

impl From<&CheckDef> for CheckInfo {
    fn from(def: &CheckDef) -> Self {
        CheckInfo {
            id: def.id,
            description: def.about,
        }
    }
}

// ===== impl CheckResult =====

impl CheckResult {
    pub(crate) fn new(def: &CheckDef, verdict: Verdict) -> Self {
        let outcome = match verdict {
            Ok(note) => Outcome::Passed { note },
            Err(Failure::Failed(reason)) => Outcome::Failed { reason },
            Err(Failure::Skipped(reason)) => Outcome::Skipped { reason },
        };
        CheckResult {
            check: CheckInfo::from(def),
            outcome,
        }
    }

    /// Returns whether the check passed.
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Passed { .. })
    }

    /// Returns whether the check failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

/// One line: status, id, description, then the note or the reason.
impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, tail) = match &self.outcome {
            Outcome::Passed { note: None } => ("PASS", String::new()),
            Outcome::Passed { note: Some(n) } => ("PASS", format!(" ({n})")),
            Outcome::Failed { reason } => ("FAIL", format!(": {reason}")),
            Outcome::Skipped { reason } => ("SKIP", format!(": {reason}")),
        };
        let id = self.check.id;
        let about = self.check.description;
        write!(f, "{status}  {id:<w$}  {about}{tail}", w = id_width())
    }
}

/// The results of a run, in check order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One result per selected check.
    pub results: Vec<CheckResult>,
}

// ===== impl Report =====

impl Report {
    /// Returns the result of check `id`, if it ran.
    pub fn get(&self, id: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check.id == id)
    }

    /// Returns how many checks passed.
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Passed { .. }))
    }

    /// Returns how many checks failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }

    /// Returns how many checks were skipped.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped { .. }))
    }

    /// Returns whether no check failed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
}

/// The closing line: `N passed, N failed`, then `, N skipped` when any were.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed(), self.failed())?;
        if self.skipped() > 0 {
            write!(f, ", {} skipped", self.skipped())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome) -> CheckResult {
        CheckResult {
            check: CheckInfo {
                id: "ids.echo",
                description: "ids come back",
            },
            outcome,
        }
    }

    #[test]
    fn lines_show_status_id_description_and_why() {
        let pass = result(Outcome::Passed {
            note: Some("plain".into()),
        });
        let line = pass.to_string();
        assert!(line.starts_with("PASS  ids.echo "), "{line}");
        assert!(line.ends_with("  ids come back (plain)"), "{line}");

        let fail = result(Outcome::Failed {
            reason: "id 2 for 1".into(),
        });
        assert!(fail.to_string().ends_with("ids come back: id 2 for 1"));
        let skip = result(Outcome::Skipped {
            reason: "needs --ws".into(),
        });
        assert!(skip.to_string().starts_with("SKIP  "));
    }

    #[test]
    fn summary_counts_and_mentions_skips_only_when_there_are_some() {
        let mut report = Report {
            results: vec![
                result(Outcome::Passed { note: None }),
                result(Outcome::Failed { reason: "x".into() }),
            ],
        };
        assert_eq!(report.to_string(), "1 passed, 1 failed");
        assert!(!report.is_success());
        report
            .results
            .push(result(Outcome::Skipped { reason: "y".into() }));
        assert_eq!(report.to_string(), "1 passed, 1 failed, 1 skipped");
    }
}
