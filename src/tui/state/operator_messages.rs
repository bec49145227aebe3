//! What the engine answered to the operator's commands, and its warnings: the messages a live
//! and a cold migration both keep, below both so neither imports the other for them.

use std::time::SystemTime;

/// Operator messages kept per migration (the engine's answers to commands, and warnings).
pub const OPERATOR_MESSAGES_KEPT: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorMessageKind {
    /// A command the engine carried out.
    Done,
    /// A command the engine refused, with why.
    Refused,
    /// A recoverable problem: a poll that timed out, a policy action libvirt refused.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorMessage {
    pub at: SystemTime,
    pub kind: OperatorMessageKind,
    pub text: String,
}
