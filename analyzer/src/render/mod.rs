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
    env.add_filter("fact", fact_value);
    env.add_filter("cpu_row", cpu_row);
    env.add_filter("pair_row", pair_row);
    env.add_filter("flatten", flatten);
    env
}

/// A fact's value with its unit, chosen by the fact's name: shares and utilization as percent,
/// `*_bytes` in binary units, `*seconds*`/`*uptime*` as durations, `rates.*` per second.
pub fn fact_value(v: minijinja::Value, fact: &str) -> String {
    let leaf = fact.rsplit('.').next().unwrap_or(fact);
    let Ok(x) = f64::try_from(v.clone()) else {
        return v.to_string();
    };
    if leaf == "utilization" || leaf.contains("share") || leaf.ends_with("_ratio_to_expected") {
        return percent(x);
    }
    if leaf.ends_with("_bytes") {
        return human_bytes(x.max(0.0) as u64);
    }
    if leaf.contains("seconds") || leaf.contains("uptime") {
        return crate::rules::duration(x);
    }
    if fact.contains(".rates.") && leaf != "interval_seconds" {
        return format!("{}/s", crate::rules::num(v));
    }
    let unit = if fact.starts_with("nf.stats.") || fact.starts_with("nf.delta.") {
        " (since boot)"
    } else if ["count", "max", "entries", "buckets"].contains(&leaf)
        || fact.starts_with("nf.sizing.")
    {
        " entries"
    } else {
        ""
    };
    let unit = if fact.starts_with("nf.delta.") {
        " between samples"
    } else {
        unit
    };
    format!("{}{unit}", crate::rules::num(v))
}

fn percent(x: f64) -> String {
    let p = x * 100.0;
    let s = if p != 0.0 && p.abs() < 1.0 {
        format!("{p:.2}")
    } else {
        format!("{p:.1}")
    };
    format!("{}%", s.strip_suffix(".0").unwrap_or(&s))
}

/// A CPU's loss counters as a bar-chart row: label, total, colour.
fn cpu_row(v: minijinja::Value) -> minijinja::Value {
    let n = |k: &str| {
        v.get_attr(k)
            .ok()
            .and_then(|x| u64::try_from(x).ok())
            .unwrap_or(0)
    };
    let cpu = v.get_attr("cpu").map(|c| c.to_string()).unwrap_or_default();
    minijinja::Value::from(vec![
        minijinja::Value::from(format!("cpu {cpu}")),
        minijinja::Value::from(n("drop") + n("early_drop") + n("insert_failed")),
        minijinja::Value::from(if n("drop") > 0 { "#b42318" } else { "#b54708" }),
    ])
}

/// A top pair as a bar-chart row.
fn pair_row(v: minijinja::Value) -> minijinja::Value {
    let label = crate::rules::pair(v.clone()).unwrap_or_default();
    let entries = v.get_attr("entries").unwrap_or(minijinja::Value::from(0));
    minijinja::Value::from(vec![minijinja::Value::from(label), entries])
}

/// A list of lists as one list.
fn flatten(v: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    let mut out = Vec::new();
    for inner in v.try_iter()? {
        for item in inner.try_iter()? {
            out.push(item);
        }
    }
    Ok(minijinja::Value::from(out))
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
    extra: minijinja::Value,
) -> Result<String, RenderError> {
    let mut env = environment();
    let err = |e: minijinja::Error| RenderError {
        format,
        message: format!("{e:#}"),
    };
    env.add_template(name, source).map_err(err)?;
    let tmpl = env.get_template(name).map_err(err)?;
    let ctx = minijinja::context! {
        ..extra,
        ..minijinja::Value::from(minijinja::value::Serde(report))
    };
    tmpl.render(ctx).map_err(err)
}
