//! The JSON report: the DESIGN.md contract (`schema_version`, `nodes[]` with `likely_cause`,
//! `findings`, `ruled_out`, `missing`, `problems`), pretty-printed.

use super::{RenderError, Renderer};
use crate::Report;

pub struct Json;

impl Renderer for Json {
    fn render(&self, report: &Report) -> Result<String, RenderError> {
        serde_json::to_string_pretty(report)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| RenderError {
                format: "json",
                message: e.to_string(),
            })
    }
}
