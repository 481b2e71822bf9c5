//! The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network),
//! autoescaped because the template is named `report.html`. The Content-Security-Policy allows
//! nothing but the one stylesheet, pinned by its sha256, so even a tag smuggled past escaping
//! could load or run nothing.

use super::{RenderError, Renderer};
use crate::Report;
use base64::Engine;
use sha2::{Digest, Sha256};

pub struct Html;

const TEMPLATE: &str = include_str!("../../templates/report.html");
const CSS: &str = include_str!("../../templates/report.css");

impl Renderer for Html {
    fn render(&self, report: &Report) -> Result<String, RenderError> {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        let extra = minijinja::context! {
            css => minijinja::Value::from_safe_string(CSS.to_string()),
            css_hash => format!("sha256-{hash}"),
        };
        super::render_template("html", "report.html", TEMPLATE, report, extra)
    }
}
