//! A one-line progress bar on stderr: done/total, rate and ETA. Drawn only when stderr is a
//! terminal, at most five times a second; it shows counts, never a card.

use std::io::Write;
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(200);
const WIDTH: usize = 24;

/// The bar.
pub struct Progress {
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A bar over `total` lines; drawn when `enabled` (stderr is a terminal).
    pub fn new(total: u64, enabled: bool) -> Self {
        Self {
            total,
            done: 0,
            started: Instant::now(),
            drawn: None,
            enabled,
        }
    }

    /// Counts `n` more lines done and redraws if it is time.
    pub fn advance(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        if self.enabled && self.drawn.is_none_or(|t| t.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    /// Clears the bar (before another line is printed on stderr); the next advance redraws.
    pub fn clear(&mut self) {
        if self.enabled && self.drawn.is_some() {
            eprint!("\r\x1b[K");
            self.drawn = None;
        }
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self) {
        if self.enabled {
            self.draw();
            eprintln!();
        }
    }

    fn draw(&mut self) {
        eprint!(
            "\r\x1b[K{}",
            render(self.done, self.total, self.started.elapsed())
        );
        let _ = std::io::stderr().flush();
        self.drawn = Some(Instant::now());
    }
}

/// `[#####-----] done/total  rate/s  ETA mm:ss`.
fn render(done: u64, total: u64, elapsed: Duration) -> String {
    let total = total.max(done);
    let filled = match total {
        0 => WIDTH,
        t => usize::try_from(done.saturating_mul(WIDTH as u64) / t).unwrap_or(WIDTH),
    };
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = match rate > 0.0 {
        true => {
            let secs = (total.saturating_sub(done) as f64 / rate).round() as u64;
            format!("{}:{:02}", secs / 60, secs % 60)
        }
        false => "-:--".to_owned(),
    };
    format!(
        "[{}{}] {done}/{total}  {rate:.0}/s  ETA {eta}",
        "#".repeat(filled.min(WIDTH)),
        "-".repeat(WIDTH.saturating_sub(filled))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_counts_rate_and_eta() {
        assert_eq!(
            render(250, 1000, Duration::from_secs(5)),
            "[######------------------] 250/1000  50/s  ETA 0:15"
        );
        assert_eq!(
            render(0, 0, Duration::ZERO),
            "[########################] 0/0  0/s  ETA -:--"
        );
    }
}
