//! Terminal text: the likely cause per node, why, the evidence lines, the first safe steps, and
//! what is missing. Colour only when asked (a TTY without `NO_COLOR`, decided by the caller);
//! every string from a bundle passes through [`super::terminal_safe`].

use super::{RenderError, Renderer, terminal_safe as safe};
use crate::Report;
use crate::findings::NodeReport;
use crate::rules::{RuleKind, Severity, StepKind};
use std::fmt::Write;

pub struct Text {
    pub color: bool,
    /// Only the likely cause per node and where the full report is (after writing HTML).
    pub brief: bool,
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("1;33", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

impl Renderer for Text {
    fn render(&self, report: &Report) -> Result<String, RenderError> {
        let st = Style { on: self.color };
        let mut out = String::new();
        for node in &report.nodes {
            self.node(&mut out, &st, node);
        }
        for p in &report.unreadable {
            let _ = writeln!(out, "{} {}", st.red("unreadable:"), safe(&p.to_string()));
        }
        Ok(out)
    }
}

impl Text {
    fn node(&self, out: &mut String, st: &Style, n: &NodeReport) {
        let _ = writeln!(out, "{} {}", st.bold("node"), st.bold(&safe(&n.node)));
        match &n.likely_cause {
            Some(c) => {
                let label = match c.severity {
                    Severity::Critical => st.red("likely cause:"),
                    _ => st.yellow("likely cause:"),
                };
                let _ = writeln!(
                    out,
                    "  {label} {} — {} (score {})",
                    c.id,
                    safe(&c.title),
                    c.score
                );
                let _ = writeln!(out, "  {}", safe(&c.summary));
                if let Some(k) = &c.contributor {
                    let _ = writeln!(
                        out,
                        "  {} {} — {}",
                        st.bold("behind it:"),
                        k.id,
                        safe(&k.summary)
                    );
                }
            }
            None => {
                let _ = writeln!(out, "  {} no cause found", st.green("likely cause:"));
                for r in n
                    .ruled_out_details
                    .iter()
                    .filter(|r| !r.summary.is_empty() && r.kind == RuleKind::Check)
                {
                    let _ = writeln!(out, "  {} {}", st.dim("ruled out:"), safe(&r.summary));
                }
            }
        }
        if self.brief {
            let _ = writeln!(
                out,
                "  {} finding(s), {} missing input(s), {} problem(s)",
                n.findings.len(),
                n.missing
                    .iter()
                    .filter(|m| m.status == "not-evaluated")
                    .count(),
                n.problems.len()
            );
            return;
        }
        for f in &n.findings {
            let kind = match f.kind {
                RuleKind::Cause => "cause",
                RuleKind::Contributor => "contributor",
                RuleKind::Check => "check",
                RuleKind::Reading => "reading",
            };
            let _ = writeln!(
                out,
                "\n  [{kind} {}] {} — {}",
                f.score,
                st.bold(&f.id),
                safe(&f.title)
            );
            let _ = writeln!(out, "    {}", safe(&f.summary));
            for e in &f.evidence {
                for l in &e.lines {
                    let _ = writeln!(
                        out,
                        "    {} {}",
                        st.dim(&format!("{}:{}", safe(&l.member), l.line)),
                        safe(&l.text)
                    );
                }
            }
            if f.confidence.level != "high" {
                let _ = writeln!(
                    out,
                    "    {} {}",
                    st.yellow("confidence reduced:"),
                    safe(&f.confidence.reasons.join("; "))
                );
            }
            for m in f
                .mitigations
                .iter()
                .filter(|m| m.kind == Some(StepKind::Safe))
                .take(2)
            {
                let _ = writeln!(out, "    {} {}", st.green("do:"), safe(&m.text));
                if let Some(c) = &m.command {
                    let _ = writeln!(out, "        $ {}", safe(c));
                }
            }
        }
        let not_evaluated: Vec<_> = n
            .missing
            .iter()
            .filter(|m| m.status == "not-evaluated")
            .collect();
        if !not_evaluated.is_empty() {
            let _ = writeln!(out, "\n  {}", st.bold("missing data"));
            let mut seen = Vec::new();
            for m in not_evaluated {
                for i in &m.inputs {
                    if !seen.contains(&i.name) {
                        seen.push(i.name.clone());
                        let _ = writeln!(out, "    {}: {}", safe(&i.name), safe(&i.command));
                    }
                }
            }
        }
        if !n.problems.is_empty() {
            let _ = writeln!(out, "\n  {}", st.bold("problems"));
            for p in n.problems.iter().take(10) {
                let _ = writeln!(out, "    {}", safe(&p.to_string()));
            }
            if n.problems.len() > 10 {
                let _ = writeln!(
                    out,
                    "    … and {} more (see the JSON report)",
                    n.problems.len() - 10
                );
            }
        }
        out.push('\n');
    }
}
