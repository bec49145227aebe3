//! Live inventory: one worker per host connection feeding host and instance snapshots to the app.
