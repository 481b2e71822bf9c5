//! The HTML report: one self-contained file (inline CSS, no scripts, no network, a strict CSP),
//! autoescaped because the template is named `report.html`.

use super::{RenderError, Renderer};
use crate::Report;

pub struct Html;

const TEMPLATE: &str = include_str!("../../templates/report.html");

impl Renderer for Html {
    fn render(&self, report: &Report) -> Result<String, RenderError> {
        super::render_template("html", "report.html", TEMPLATE, report)
    }
}
