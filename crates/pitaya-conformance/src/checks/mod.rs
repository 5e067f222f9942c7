//! Every check, in the order they are reported.
//!
//! A check is a function of the shared [`Ctx`] that returns a [`Verdict`]. Checks
//! marked solo run one at a time after all the others, because they load the server
//! (and the room every other check shares) heavily enough to slow everyone else down.

mod compression;
mod errors;
mod handshake;
pub(crate) mod heartbeat;
mod ids;
mod load;
mod malformed;
mod room;

use futures_util::future::BoxFuture;

use crate::ctx::{Ctx, Verdict};

/// Runs one check.
pub(crate) type Run = fn(Ctx) -> BoxFuture<'static, Verdict>;

/// One check: its id, what it checks, and how to run it.
#[derive(Debug)]
pub(crate) struct CheckDef {
    pub(crate) id: &'static str,
    pub(crate) about: &'static str,
    pub(crate) solo: bool,
    pub(crate) run: Run,
}

/// Returns a check that runs at the same time as the others.
pub(crate) fn check(id: &'static str, about: &'static str, run: Run) -> CheckDef {
    CheckDef {
        id,
        about,
        solo: false,
        run,
    }
}

/// Returns a check that runs alone, after the others.
pub(crate) fn solo(id: &'static str, about: &'static str, run: Run) -> CheckDef {
    CheckDef {
        id,
        about,
        solo: true,
        run,
    }
}

/// Returns every check, solo ones last.
pub(crate) fn all() -> Vec<CheckDef> {
    let mut all = handshake::checks();
    all.extend(ids::checks());
    all.extend(compression::checks());
    all.extend(errors::checks());
    all.extend(malformed::checks());
    all.extend(heartbeat::checks());
    all.extend(room::checks());
    all.extend(load::checks());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_solo_checks_come_last() {
        let all = all();
        let mut ids: Vec<_> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "duplicate check ids");

        let first_solo = all.iter().position(|c| c.solo).unwrap_or(all.len());
        assert!(
            all[first_solo..].iter().all(|c| c.solo),
            "a solo check is not last"
        );
    }

    #[test]
    fn ids_are_dotted_lower_case_words_and_descriptions_fit_a_line() {
        for c in all() {
            let ok =
                c.id.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ".-".contains(ch));
            assert!(ok && c.id.contains('.'), "{}", c.id);
            assert!(c.about.len() <= 160, "{}: {} chars", c.id, c.about.len());
        }
    }
}
