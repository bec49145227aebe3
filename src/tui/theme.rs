//! Themes are data: a TOML file of named styles, each of which may override only some fields
//! of the default theme (dark), like gitui's theme patches. A file that is wrong is refused
//! with its path, line and key, and the default is used instead.
//!
//! ```toml
//! selected = { fg = "black", bg = "cyan", bold = true }
//! state_down = { fg = "#ff5f5f" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use toml::Spanned;

use crate::config::xdg_dir;

/// Every style a view draws with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theme {
    pub base: Style,
    pub border: Style,
    pub border_focused: Style,
    pub title: Style,
    pub header: Style,
    pub selected: Style,
    pub state_up: Style,
    pub state_connecting: Style,
    pub state_down: Style,
    pub instance_running: Style,
    pub instance_stopped: Style,
    pub instance_paused: Style,
    pub job: Style,
    pub status_bar: Style,
    pub error: Style,
    pub footer_key: Style,
    pub footer_text: Style,
    pub filter: Style,
    /// What cannot be chosen now: refused destinations, cold migration while unavailable.
    pub disabled: Style,
    /// Needs the operator's eye but is not an error: "not converging", post-copy warnings.
    pub warning: Style,
    /// Passed prechecks, completed migrations.
    pub success: Style,
    /// The filled part of progress gauges.
    pub gauge: Style,
    pub chart_remaining: Style,
    pub chart_transfer: Style,
    pub chart_dirty: Style,
    /// What is in force now: the downtime rung, the phase on the timeline.
    pub current: Style,
}

/// Key names in theme files, in the order of the struct; the single list both the parser and
/// the error message use.
pub const STYLE_KEYS: [&str; 26] = [
    "base",
    "border",
    "border_focused",
    "title",
    "header",
    "selected",
    "state_up",
    "state_connecting",
    "state_down",
    "instance_running",
    "instance_stopped",
    "instance_paused",
    "job",
    "status_bar",
    "error",
    "footer_key",
    "footer_text",
    "filter",
    "disabled",
    "warning",
    "success",
    "gauge",
    "chart_remaining",
    "chart_transfer",
    "chart_dirty",
    "current",
];

const STYLE_FIELDS: [&str; 7] = [
    "fg",
    "bg",
    "bold",
    "dim",
    "italic",
    "underlined",
    "reversed",
];

pub const BUILT_IN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

impl Default for Theme {
    /// The dark theme, built from the 16 ANSI colours only so it works on any colour terminal.
    fn default() -> Theme {
        let fg = |c: Color| Style::new().fg(c);
        Theme {
            base: Style::new(),
            border: fg(Color::DarkGray),
            border_focused: fg(Color::Cyan),
            title: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            header: fg(Color::Yellow).add_modifier(Modifier::BOLD),
            selected: Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            state_up: fg(Color::Green),
            state_connecting: fg(Color::Yellow),
            state_down: fg(Color::Red).add_modifier(Modifier::BOLD),
            instance_running: fg(Color::Green),
            instance_stopped: fg(Color::DarkGray),
            instance_paused: fg(Color::Yellow),
            job: fg(Color::Magenta).add_modifier(Modifier::BOLD),
            status_bar: Style::new().fg(Color::White).bg(Color::Blue),
            error: fg(Color::Red).add_modifier(Modifier::BOLD),
            footer_key: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            footer_text: fg(Color::Gray),
            filter: fg(Color::Yellow),
            disabled: fg(Color::DarkGray),
            warning: fg(Color::Yellow).add_modifier(Modifier::BOLD),
            success: fg(Color::Green),
            gauge: fg(Color::Cyan),
            chart_remaining: fg(Color::Cyan),
            chart_transfer: fg(Color::Green),
            chart_dirty: fg(Color::Red),
            current: Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("theme {path}: {message}; using the default theme")]
pub struct ThemeError {
    pub path: String,
    pub message: String,
}

/// What the terminal can show, from the environment (https://no-color.org, COLORTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorSupport {
    None,
    Ansi16,
    TrueColor,
}

impl ColorSupport {
    pub fn detect() -> ColorSupport {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        ColorSupport::from_env(&var("NO_COLOR"), &var("COLORTERM"), &var("TERM"))
    }

    pub fn from_env(no_color: &str, colorterm: &str, term: &str) -> ColorSupport {
        if !no_color.is_empty() || term == "dumb" {
            ColorSupport::None
        } else if colorterm == "truecolor" || colorterm == "24bit" {
            ColorSupport::TrueColor
        } else {
            // 256-colour terminals render the 16 ANSI colours faithfully; RGB they may not.
            ColorSupport::Ansi16
        }
    }
}

impl Theme {
    /// Fits the theme to the terminal: without colour, only modifiers remain (the selection
    /// becomes reversed video so it still shows); on 16 colours, RGB becomes the nearest ANSI.
    pub fn for_terminal(mut self, support: ColorSupport) -> Theme {
        self.for_each_style(|style| match support {
            ColorSupport::TrueColor => {}
            ColorSupport::Ansi16 => {
                style.fg = style.fg.map(nearest_ansi);
                style.bg = style.bg.map(nearest_ansi);
            }
            ColorSupport::None => {
                style.fg = None;
                style.bg = None;
            }
        });
        if support == ColorSupport::None {
            self.selected = self.selected.add_modifier(Modifier::REVERSED);
            self.status_bar = self.status_bar.add_modifier(Modifier::REVERSED);
            // Without colour, the rung in force must still stand out from the others.
            self.current = self.current.add_modifier(Modifier::REVERSED);
        }
        self
    }

    fn for_each_style(&mut self, mut f: impl FnMut(&mut Style)) {
        for style in [
            &mut self.base,
            &mut self.border,
            &mut self.border_focused,
            &mut self.title,
            &mut self.header,
            &mut self.selected,
            &mut self.state_up,
            &mut self.state_connecting,
            &mut self.state_down,
            &mut self.instance_running,
            &mut self.instance_stopped,
            &mut self.instance_paused,
            &mut self.job,
            &mut self.status_bar,
            &mut self.error,
            &mut self.footer_key,
            &mut self.footer_text,
            &mut self.filter,
            &mut self.disabled,
            &mut self.warning,
            &mut self.success,
            &mut self.gauge,
            &mut self.chart_remaining,
            &mut self.chart_transfer,
            &mut self.chart_dirty,
            &mut self.current,
        ] {
            f(style)
        }
    }

    fn style_mut(&mut self, key: &str) -> Option<&mut Style> {
        Some(match key {
            "base" => &mut self.base,
            "border" => &mut self.border,
            "border_focused" => &mut self.border_focused,
            "title" => &mut self.title,
            "header" => &mut self.header,
            "selected" => &mut self.selected,
            "state_up" => &mut self.state_up,
            "state_connecting" => &mut self.state_connecting,
            "state_down" => &mut self.state_down,
            "instance_running" => &mut self.instance_running,
            "instance_stopped" => &mut self.instance_stopped,
            "instance_paused" => &mut self.instance_paused,
            "job" => &mut self.job,
            "status_bar" => &mut self.status_bar,
            "error" => &mut self.error,
            "footer_key" => &mut self.footer_key,
            "footer_text" => &mut self.footer_text,
            "filter" => &mut self.filter,
            "disabled" => &mut self.disabled,
            "warning" => &mut self.warning,
            "success" => &mut self.success,
            "gauge" => &mut self.gauge,
            "chart_remaining" => &mut self.chart_remaining,
            "chart_transfer" => &mut self.chart_transfer,
            "chart_dirty" => &mut self.chart_dirty,
            "current" => &mut self.current,
            _ => return None,
        })
    }

    /// Applies a theme file's text on top of `self`.
    pub fn patched(mut self, text: &str, path: &str) -> Result<Theme, ThemeError> {
        let error = |line: Option<usize>, message: String| ThemeError {
            path: path.to_string(),
            message: match line {
                Some(line) => format!("line {line}, {message}"),
                None => message,
            },
        };
        type Fields = BTreeMap<String, Spanned<toml::Value>>;
        let table: BTreeMap<String, Spanned<Fields>> =
            toml::from_str(text).map_err(|e| error(None, one_line(&e.to_string())))?;
        let line_of = |span: std::ops::Range<usize>| Some(line_number(text, span.start));
        for (key, fields) in &table {
            let Some(style) = self.style_mut(key) else {
                return Err(error(
                    line_of(fields.span()),
                    format!(
                        "key {key:?} is not a theme style; known styles: {}",
                        STYLE_KEYS.join(", ")
                    ),
                ));
            };
            for (field, value) in fields.get_ref() {
                let at = line_of(value.span());
                let full_key = format!("{key}.{field}");
                match (field.as_str(), value.get_ref()) {
                    ("fg" | "bg", toml::Value::String(name)) => {
                        let color = parse_color(name).map_err(|m| {
                            error(at, format!("key {full_key}: {m}"))
                        })?;
                        if field == "fg" {
                            style.fg = Some(color);
                        } else {
                            style.bg = Some(color);
                        }
                    }
                    ("fg" | "bg", _) => {
                        return Err(error(
                            at,
                            format!("key {full_key}: expected a colour name in quotes, e.g. \"cyan\" or \"#00afaf\""),
                        ))
                    }
                    (modifier @ ("bold" | "dim" | "italic" | "underlined" | "reversed"), value) => {
                        let Some(on) = value.as_bool() else {
                            return Err(error(
                                at,
                                format!("key {full_key}: expected true or false"),
                            ));
                        };
                        let modifier = match modifier {
                            "bold" => Modifier::BOLD,
                            "dim" => Modifier::DIM,
                            "italic" => Modifier::ITALIC,
                            "underlined" => Modifier::UNDERLINED,
                            _ => Modifier::REVERSED,
                        };
                        *style = if on {
                            style.add_modifier(modifier)
                        } else {
                            style.remove_modifier(modifier)
                        };
                    }
                    (other, _) => {
                        return Err(error(
                            at,
                            format!(
                                "key {key}.{other} is not a style field; use {}",
                                STYLE_FIELDS.join(", ")
                            ),
                        ))
                    }
                }
            }
        }
        Ok(self)
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|'))
        .collect::<Vec<_>>()
        .join(": ")
}

fn line_number(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

const COLOR_NAMES: [(&str, Color); 17] = [
    ("reset", Color::Reset),
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("dark_gray", Color::DarkGray),
    ("light_red", Color::LightRed),
    ("light_green", Color::LightGreen),
    ("light_yellow", Color::LightYellow),
    ("light_blue", Color::LightBlue),
    ("light_magenta", Color::LightMagenta),
    ("light_cyan", Color::LightCyan),
    ("white", Color::White),
];

pub fn parse_color(name: &str) -> Result<Color, String> {
    let lower = name.trim().to_ascii_lowercase().replace('-', "_");
    if let Some((_, color)) = COLOR_NAMES.iter().find(|(n, _)| *n == lower) {
        return Ok(*color);
    }
    if let Some(hex) = lower.strip_prefix('#') {
        if hex.len() == 6 {
            if let Ok(rgb) = u32::from_str_radix(hex, 16) {
                return Ok(Color::Rgb((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8));
            }
        }
    }
    let names: Vec<&str> = COLOR_NAMES.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "{name:?} is not a colour; use one of {} or #rrggbb",
        names.join(", ")
    ))
}

/// Nearest of the 16 ANSI colours by squared RGB distance (xterm's default palette).
fn nearest_ansi(color: Color) -> Color {
    let Color::Rgb(r, g, b) = color else {
        return color;
    };
    const PALETTE: [(Color, (i32, i32, i32)); 16] = [
        (Color::Black, (0, 0, 0)),
        (Color::Red, (205, 0, 0)),
        (Color::Green, (0, 205, 0)),
        (Color::Yellow, (205, 205, 0)),
        (Color::Blue, (0, 0, 238)),
        (Color::Magenta, (205, 0, 205)),
        (Color::Cyan, (0, 205, 205)),
        (Color::Gray, (229, 229, 229)),
        (Color::DarkGray, (127, 127, 127)),
        (Color::LightRed, (255, 0, 0)),
        (Color::LightGreen, (0, 255, 0)),
        (Color::LightYellow, (255, 255, 0)),
        (Color::LightBlue, (92, 92, 255)),
        (Color::LightMagenta, (255, 0, 255)),
        (Color::LightCyan, (0, 255, 255)),
        (Color::White, (255, 255, 255)),
    ];
    let (r, g, b) = (r as i32, g as i32, b as i32);
    PALETTE
        .iter()
        .min_by_key(|(_, (pr, pg, pb))| (r - pr).pow(2) + (g - pg).pow(2) + (b - pb).pow(2))
        .map_or(color, |(c, _)| *c)
}

/// Where `--theme NAME|PATH` points: a path if it has a `/` or ends in `.toml`, else a
/// built-in name, else `$XDG_CONFIG_HOME/ferry/themes/NAME.toml`.
pub fn load(choice: Option<&str>) -> (Theme, Option<ThemeError>) {
    let Some(choice) = choice else {
        return (Theme::default(), None);
    };
    let fallback = |error: ThemeError| (Theme::default(), Some(error));
    let is_path = choice.contains('/') || choice.ends_with(".toml");
    if !is_path {
        if let Some((_, text)) = BUILT_IN.iter().find(|(name, _)| *name == choice) {
            return match Theme::default().patched(text, &format!("built-in {choice}")) {
                Ok(theme) => (theme, None),
                Err(error) => fallback(error),
            };
        }
    }
    let path: PathBuf = if is_path {
        PathBuf::from(choice)
    } else {
        xdg_dir("XDG_CONFIG_HOME", ".config").join(format!("ferry/themes/{choice}.toml"))
    };
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => match Theme::default().patched(&text, &shown) {
            Ok(theme) => (theme, None),
            Err(error) => fallback(error),
        },
        Err(e) if !is_path && e.kind() == std::io::ErrorKind::NotFound => fallback(ThemeError {
            path: shown,
            message: format!(
                "no theme named {choice:?}; built-in themes are {}, or give a path to a .toml file",
                BUILT_IN.map(|(n, _)| n).join(", ")
            ),
        }),
        Err(e) => fallback(ThemeError {
            path: shown,
            message: format!("cannot read it: {e}"),
        }),
    }
}

pub fn load_path(path: &Path) -> (Theme, Option<ThemeError>) {
    load(Some(&path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_themes_parse_and_differ() {
        let mut seen = Vec::new();
        for (name, _) in BUILT_IN {
            let (theme, error) = load(Some(name));
            assert_eq!(error, None, "{name}");
            seen.push(theme);
        }
        assert_ne!(seen[0], seen[1]);
        assert_ne!(seen[1], seen[2]);
    }

    /// dark.toml is the default spelled out: every style named, and loading it changes
    /// nothing. A key added to the struct but not to the file (or the other way) fails here.
    #[test]
    fn dark_toml_spells_out_every_default_style() {
        let text = BUILT_IN[0].1;
        for key in STYLE_KEYS {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{key} ="))),
                "dark.toml lacks {key}"
            );
        }
        let (dark, error) = load(Some("dark"));
        assert_eq!(error, None);
        assert_eq!(dark, Theme::default());
        let mut default = Theme::default();
        for key in STYLE_KEYS {
            assert!(default.style_mut(key).is_some(), "{key} has no field");
        }
    }

    #[test]
    fn a_theme_may_override_one_field_only() {
        let theme = Theme::default()
            .patched("selected = { bg = \"#ff0000\" }\n", "t.toml")
            .unwrap();
        assert_eq!(theme.selected.bg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(theme.selected.fg, Theme::default().selected.fg);
        assert_eq!(theme.border, Theme::default().border);
    }

    #[test]
    fn no_color_keeps_only_modifiers_and_ansi16_maps_rgb() {
        let theme = Theme::default()
            .patched("state_down = { fg = \"#c01010\" }\n", "t.toml")
            .unwrap();
        let plain = theme.for_terminal(ColorSupport::None);
        assert_eq!(plain.state_down.fg, None);
        assert!(plain.selected.add_modifier.contains(Modifier::REVERSED));
        let ansi = theme.for_terminal(ColorSupport::Ansi16);
        assert_eq!(ansi.state_down.fg, Some(Color::Red));
        assert_eq!(
            ColorSupport::from_env("1", "truecolor", "xterm"),
            ColorSupport::None
        );
        assert_eq!(
            ColorSupport::from_env("", "truecolor", "xterm"),
            ColorSupport::TrueColor
        );
        assert_eq!(
            ColorSupport::from_env("", "", "xterm-256color"),
            ColorSupport::Ansi16
        );
    }

    /// Each file in tests/invalid_themes/ starts with `# expect: TEXT` lines; loading it must
    /// give the default theme and an error containing its path and every TEXT.
    #[test]
    fn every_invalid_theme_gives_its_own_error_then_the_default() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/invalid_themes"));
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let (theme, error) = load_path(&path);
            let error = error.expect("refused").to_string();
            assert_eq!(theme, Theme::default());
            assert!(error.contains(&*path.display().to_string()), "{error}");
            assert!(error.contains("using the default theme"), "{error}");
            for fragment in text.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
                assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
            }
            checked += 1;
        }
        assert!(checked >= 5);
        let (_, missing) = load(Some("no-such-theme"));
        assert!(missing
            .unwrap()
            .to_string()
            .contains("built-in themes are dark"));
    }
}
