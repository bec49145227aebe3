//! The one number field of the TUI: the launch dialog's bandwidth, max downtime and shutdown
//! timeout, and the operator's bandwidth and max downtime prompts all type into it. Digits
//! only, checked as they are typed, and never more than [`MAX_DIGITS`], so a value never
//! overflows; what a number means (its unit, its minimum) is the caller's to say.

use std::fmt;

use crossterm::event::KeyCode;

/// Numbers typed into the dialog or a prompt stop at this many digits: enough for any real
/// bandwidth or downtime, and never an overflow of a u64.
pub const MAX_DIGITS: usize = 9;

/// What the operator typed so far; empty is a value of its own (the dialog reads it as "no
/// limit", a prompt as "nothing typed yet").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberField {
    digits: String,
}

/// What one key did to the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberEdit {
    /// Not a key for the field (a cursor key, Enter): the caller may act on it.
    NotForTheField,
    /// Backspace on an empty field.
    Unchanged,
    Changed,
    /// A digit past [`MAX_DIGITS`]; nothing changed.
    TooManyDigits,
    /// A character that is not a digit; nothing changed.
    NotADigit(char),
}

impl NumberField {
    pub fn with_value(value: u64) -> NumberField {
        NumberField {
            digits: value.to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digits.is_empty()
    }

    /// The number typed; None while empty.
    pub fn value(&self) -> Option<u64> {
        self.digits.parse().ok()
    }

    pub fn as_str(&self) -> &str {
        &self.digits
    }

    pub fn set(&mut self, value: u64) {
        self.digits = value.to_string();
    }

    /// Digits and Backspace edit the field; every other key is left to the caller.
    pub fn edit(&mut self, code: KeyCode) -> NumberEdit {
        match code {
            KeyCode::Backspace => match self.digits.pop() {
                Some(_) => NumberEdit::Changed,
                None => NumberEdit::Unchanged,
            },
            KeyCode::Char(c) if c.is_ascii_digit() => {
                if self.digits.len() >= MAX_DIGITS {
                    return NumberEdit::TooManyDigits;
                }
                self.digits.push(c);
                NumberEdit::Changed
            }
            KeyCode::Char(c) => NumberEdit::NotADigit(c),
            _ => NumberEdit::NotForTheField,
        }
    }
}

impl fmt::Display for NumberField {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.digits)
    }
}

/// For tests and literals: the digits as typed. Anything else than digits is dropped, as the
/// field would have refused it.
impl From<&str> for NumberField {
    fn from(text: &str) -> NumberField {
        NumberField {
            digits: text
                .chars()
                .filter(char::is_ascii_digit)
                .take(MAX_DIGITS)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_only_and_at_most_max_digits() {
        let mut field = NumberField::default();
        assert_eq!(field.edit(KeyCode::Backspace), NumberEdit::Unchanged);
        assert_eq!(field.edit(KeyCode::Char('x')), NumberEdit::NotADigit('x'));
        assert!(field.is_empty() && field.value().is_none());
        for _ in 0..MAX_DIGITS {
            assert_eq!(field.edit(KeyCode::Char('9')), NumberEdit::Changed);
        }
        assert_eq!(field.edit(KeyCode::Char('9')), NumberEdit::TooManyDigits);
        assert_eq!(field.value(), Some(999_999_999));
        assert_eq!(field.edit(KeyCode::Backspace), NumberEdit::Changed);
        assert_eq!(field.to_string(), "99999999");
        assert_eq!(field.edit(KeyCode::Enter), NumberEdit::NotForTheField);
        assert_eq!(NumberField::with_value(2000).as_str(), "2000");
        assert_eq!(NumberField::from("2x5"), NumberField::with_value(25));
    }
}
