//! `ferry bench-render`: frame render and filter times on a synthetic inventory (10,000
//! instances on 200 hosts), printed as figures. Kept out of the test suite on purpose:
//! timings on a shared CI machine would make flaky assertions. Goal: < 5 ms each.

use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::inventory::sample;

use super::app::App;
use super::state::instances::InstanceKey;
use super::theme::Theme;
use super::views;

pub struct Figures {
    pub label: String,
    pub mean: Duration,
    pub worst: Duration,
}

fn measure(label: String, rounds: u32, mut work: impl FnMut()) -> Figures {
    work(); // warm-up
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for _ in 0..rounds {
        let started = Instant::now();
        work();
        let took = started.elapsed();
        total += took;
        worst = worst.max(took);
    }
    Figures {
        label,
        mean: total / rounds,
        worst,
    }
}

pub fn run(hosts: usize, instances_per_host: usize, rounds: u32) -> Vec<Figures> {
    let now = SystemTime::now();
    let inventory = sample::inventory(hosts, instances_per_host, now);
    let total = hosts * instances_per_host;
    let theme = Theme::default();
    let mut figures = Vec::new();
    for (width, height) in [(80u16, 24u16), (200, 60)] {
        let mut app = App::new(inventory.clone(), now);
        // Instances pane focused, cursor mid-list: the costliest ordinary frame.
        app.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
        let middle = app
            .visible_instances()
            .get(total / 2)
            .map(|i| InstanceKey::of(i));
        if let Some(key) = middle {
            app.select_instance(&key);
        }
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        figures.push(measure(
            format!("frame {width}x{height}, {total} instances on {hosts} hosts"),
            rounds,
            || {
                terminal
                    .draw(|frame| views::draw(frame, &app, &theme))
                    .expect("draw");
            },
        ));
    }
    for text in ["vm-0123", "~^vm-0[0-4]\\d{2}5$"] {
        let mut app = App::new(inventory.clone(), now);
        for c in format!("/{text}").chars() {
            app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        let mut matched = 0;
        figures.push(measure(
            format!("filter {text:?} over {total} instances (+ sort)"),
            rounds,
            || matched = app.visible_instances().len(),
        ));
        if let Some(last) = figures.last_mut() {
            last.label.push_str(&format!(", {matched} match"));
        }
    }
    figures
}
