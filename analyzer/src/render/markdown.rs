//! A Markdown summary to paste into a ticket: at most 80 lines, naming the cause, its evidence and
//! the first safe step. Bundle text goes into code spans with backticks removed, so a crafted line
//! cannot turn into links or formatting.

use super::{RenderError, Renderer};
use crate::Report;

pub struct Markdown;

const TEMPLATE: &str = include_str!("../../templates/report.md");
/// Tickets truncate long pastes; the summary must fit a screen or two.
pub const MAX_LINES: usize = 80;

impl Renderer for Markdown {
    fn render(&self, report: &Report) -> Result<String, RenderError> {
        let text =
            super::render_template("md", "report.md", TEMPLATE, report, minijinja::context! {})?;
        let mut lines: Vec<&str> = text.lines().collect();
        // Collapse runs of blank lines the template's conditionals leave behind.
        lines.dedup_by(|a, b| a.trim().is_empty() && b.trim().is_empty());
        if lines.len() > MAX_LINES {
            lines.truncate(MAX_LINES - 1);
            lines.push("_(summary cut at 80 lines; see the HTML or JSON report for the rest)_");
        }
        let mut out = lines.join("\n");
        out.push('\n');
        Ok(out)
    }
}
