//! Pure prechecks over gathered facts, each returning pass or a reason an operator can act on.
