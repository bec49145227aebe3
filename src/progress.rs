//! The progress model: job-statistics samples turned into phase, rates, ETA and convergence verdicts.
