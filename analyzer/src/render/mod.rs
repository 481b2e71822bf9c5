//! Renderers: one [`Report`] in, one format out, a file per format.
//!
//! HTML and Markdown are minijinja templates (`analyzer/templates/`), the HTML one named
//! `report.html` so autoescape is on: bundle text is never marked safe. JSON is the report itself,
//! serialized (the contract scripts read). Terminal text is written here so colour can follow the
//! terminal and every string from a bundle is stripped of control characters first.

mod html;
mod json;
mod markdown;
mod text;

pub use html::Html;
pub use json::Json;
pub use markdown::Markdown;
pub use text::Text;

use crate::Report;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One self-contained HTML file (default).
    Html,
    /// The JSON report (schema_version 1).
    Json,
    /// A short Markdown summary to paste into a ticket.
    Md,
    /// Plain or coloured terminal text.
    Text,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot render the {format} report: {message}")]
pub struct RenderError {
    pub format: &'static str,
    pub message: String,
}

/// One output format.
pub trait Renderer {
    fn render(&self, report: &Report) -> Result<String, RenderError>;
}

/// The template environment shared by HTML and Markdown.
fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("pct", crate::rules::pct);
    env.add_filter("num", crate::rules::num);
    env.add_filter("duration", crate::rules::duration);
    env.add_filter("pair", crate::rules::pair);
    env.add_filter("bytes", human_bytes);
    env.add_filter("code", code_span);
    env
}

/// Bundle text for a Markdown code span: backticks and line breaks cannot escape it.
pub fn code_span(s: &str) -> String {
    let clean: String = terminal_safe(s)
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    format!("`{clean}`")
}

/// 1536 → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Text from a bundle made safe for a terminal: control characters (escape sequences) shown
/// escaped, never interpreted.
pub fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn render_template(
    format: &'static str,
    name: &str,
    source: &'static str,
    report: &Report,
) -> Result<String, RenderError> {
    let mut env = environment();
    let err = |e: minijinja::Error| RenderError {
        format,
        message: format!("{e:#}"),
    };
    env.add_template(name, source).map_err(err)?;
    let tmpl = env.get_template(name).map_err(err)?;
    tmpl.render(minijinja::Value::from(minijinja::value::Serde(report)))
        .map_err(err)
}
