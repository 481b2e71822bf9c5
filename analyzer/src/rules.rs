//! The rule registry: diagnosis rules are data (`rules/*.toml`, embedded at build time; `--rules DIR`
//! adds or overrides by id), evaluated as minijinja expressions over the facts tree.
//!
//! Rust holds no diagnosis. It loads the files, checks them (unique ids, expressions compile, every
//! fact an expression reads is declared, every cause says what to do) and evaluates them:
//! `applies` decides whether the rule concerns this node at all, `needs`/`needs_any` whether it can
//! be evaluated (else "missing data"), `when` whether it fires, `score` how strongly, and the
//! `summary`/`ruled_out` templates say it in the words of the numbers.
//!
//! Undefined values are strict: a rule reading a fact it did not guard with `is defined` fails
//! loudly in the registry tests instead of silently comparing `none` with a number.

use minijinja::value::{Kwargs, Serde};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Rule files compiled into the binary: (file name, contents).
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));

/// Where a rule file failed to load.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{dir}: cannot read rules directory: {source}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// What a finding claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// A failure mode: the table is exhausted.
    Cause,
    /// Why the failure mode happens: TIME_WAIT churn.
    Contributor,
    /// A health check; when it holds, it is listed under "ruled out".
    Check,
    /// An interpretation across nodes ("one hot node", "the whole pool"); listed when it holds.
    Reading,
}

/// What a rule is evaluated over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One node's facts (`node.*`, `nf.*`, …).
    #[default]
    Node,
    /// The facts of all nodes analyzed together (`cluster.*`).
    Cluster,
}

/// How bad a finding is, for ranking and `--fail-on`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// A step to take, with the command that takes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Shown only when this expression over the facts is true (default: always). A step that
    /// would contradict the node's own values — a size it already has, a hash table smaller than
    /// the current one — is guarded here, in the rule, not in Rust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// `safe` or `risky`; verification steps leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StepKind>,
    /// What to do and why, a template over the facts.
    pub text: String,
    /// The command, a template over the facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Safe,
    Risky,
}

/// One rule file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub layer: String,
    pub kind: RuleKind,
    #[serde(default)]
    pub scope: Scope,
    pub severity: Severity,
    /// Facts that must all exist to evaluate the rule.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Facts of which at least one must exist.
    #[serde(default)]
    pub needs_any: Vec<String>,
    /// Facts read only behind `is defined`: their absence lowers confidence, nothing more.
    #[serde(default)]
    pub uses: Vec<String>,
    /// Whether the rule concerns this node (default: always). Not applicable rules are silent.
    #[serde(default)]
    pub applies: Option<String>,
    pub when: String,
    /// Whether the failure is happening at collection (default: it is). A cause that is not live
    /// — an episode minutes or boots ago — ranks below every live cause whatever its severity.
    #[serde(default)]
    pub live: Option<String>,
    pub score: String,
    pub summary: String,
    /// Said when the rule was evaluated and did not fire, where that is worth saying.
    #[serde(default)]
    pub ruled_out: Option<String>,
    /// The threshold used and where it comes from.
    pub threshold: String,
    /// Facts quoted as evidence, in order.
    #[serde(default)]
    pub evidence: Vec<String>,
    #[serde(default)]
    pub mitigation: Vec<Step>,
    #[serde(default)]
    pub verify: Vec<Step>,
    /// Alerts to add so it is seen earlier next time.
    #[serde(default)]
    pub alert: Vec<Step>,
    /// The file it was read from (set by the loader).
    #[serde(skip_deserializing, default)]
    pub file: String,
    /// Compiled into the binary, as opposed to read from `--rules DIR`.
    #[serde(skip)]
    pub builtin: bool,
}

/// An input the collector gathers, and the facts it feeds: turns a missing fact into a command.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub name: String,
    /// Fact path prefixes this input provides.
    pub facts: Vec<String>,
    /// What to run on the node.
    pub command: String,
    /// Collector source labels, to pick the failure reason from the manifest.
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputsFile {
    input: Vec<Input>,
}

/// All rules and the input table, ready to evaluate.
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub inputs: Vec<Input>,
    env: Environment<'static>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// A rule file to load.
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub name: String,
    pub text: String,
    pub builtin: bool,
}

/// The file name of the input table inside a rules directory.
pub const INPUTS_FILE: &str = "inputs.toml";

impl RuleSet {
    /// The embedded rules, plus those in `extra` (same id: the file in `extra` wins).
    pub fn load(extra: Option<&Path>) -> Result<RuleSet, RuleError> {
        let mut files: Vec<RuleFile> = EMBEDDED
            .iter()
            .map(|(n, c)| RuleFile {
                name: format!("rules/{n}"),
                text: c.to_string(),
                builtin: true,
            })
            .collect();
        if let Some(dir) = extra {
            let rd = std::fs::read_dir(dir).map_err(|source| RuleError::ReadDir {
                dir: dir.to_path_buf(),
                source,
            })?;
            let mut paths: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for p in paths {
                let text = std::fs::read_to_string(&p).map_err(|e| RuleError::Invalid {
                    file: p.display().to_string(),
                    message: e.to_string(),
                })?;
                files.push(RuleFile {
                    name: p.display().to_string(),
                    text,
                    builtin: false,
                });
            }
        }
        Self::from_files(files)
    }

    /// Builds a set from rule files; a user's file overrides a built-in rule of the same id.
    pub fn from_files(files: Vec<RuleFile>) -> Result<RuleSet, RuleError> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut inputs: Vec<Input> = Vec::new();
        for RuleFile {
            name: file,
            text,
            builtin,
        } in files
        {
            let invalid = |message: String| RuleError::Invalid {
                file: file.clone(),
                message,
            };
            if file.ends_with(INPUTS_FILE) {
                let parsed: InputsFile =
                    toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
                inputs = parsed.input;
                continue;
            }
            let mut rule: Rule = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
            rule.file = file.clone();
            rule.builtin = builtin;
            match rules.iter_mut().find(|r| r.id == rule.id) {
                Some(existing) if existing.builtin && !builtin => *existing = rule,
                Some(existing) => {
                    return Err(invalid(format!(
                        "rule id {} is also defined in {}",
                        rule.id, existing.file
                    )));
                }
                None => rules.push(rule),
            }
        }
        let set = RuleSet {
            rules,
            inputs,
            env: environment(),
        };
        for r in &set.rules {
            set.check(r).map_err(|message| RuleError::Invalid {
                file: r.file.clone(),
                message,
            })?;
        }
        Ok(set)
    }

    /// Static checks every rule must pass to load.
    fn check(&self, r: &Rule) -> Result<(), String> {
        let declared: HashSet<&str> = r
            .needs
            .iter()
            .chain(&r.needs_any)
            .chain(&r.uses)
            .map(String::as_str)
            .collect();
        for (what, src) in [
            ("when", Some(&r.when)),
            ("score", Some(&r.score)),
            ("applies", r.applies.as_ref()),
            ("live", r.live.as_ref()),
        ]
        .into_iter()
        .chain(
            r.mitigation
                .iter()
                .chain(&r.verify)
                .chain(&r.alert)
                .map(|s| ("step when", s.when.as_ref())),
        ) {
            let Some(src) = src else { continue };
            let expr = self
                .env
                .compile_expression(src)
                .map_err(|e| format!("{}: `{what}` does not compile: {e}", r.id))?;
            for var in expr.undeclared_variables(true) {
                if !declared.iter().any(|d| covers(d, &var) || covers(&var, d)) {
                    return Err(format!(
                        "{}: `{what}` reads `{var}`, which is not in needs, needs_any or uses",
                        r.id
                    ));
                }
            }
        }
        let steps = r.mitigation.iter().chain(&r.verify).chain(&r.alert);
        let templates = std::iter::once(("summary", &r.summary))
            .chain(r.ruled_out.iter().map(|t| ("ruled_out", t)))
            .chain(steps.flat_map(|s| {
                std::iter::once(("step", &s.text)).chain(s.command.iter().map(|c| ("command", c)))
            }));
        for (what, src) in templates {
            let tmpl = self
                .env
                .template_from_str(src)
                .map_err(|e| format!("{}: `{what}` template does not compile: {e}", r.id))?;
            for var in tmpl.undeclared_variables(true) {
                if !declared.iter().any(|d| covers(d, &var) || covers(&var, d)) {
                    return Err(format!(
                        "{}: `{what}` template reads `{var}`, which is not in needs, needs_any or uses",
                        r.id
                    ));
                }
            }
        }
        if r.kind == RuleKind::Cause && r.mitigation.is_empty() {
            return Err(format!(
                "{}: a cause must say what to do ([[mitigation]])",
                r.id
            ));
        }
        if (r.kind == RuleKind::Reading) != (r.scope == Scope::Cluster) {
            return Err(format!(
                "{}: readings, and only readings, have scope = \"cluster\"",
                r.id
            ));
        }
        if r.needs.is_empty() && r.needs_any.is_empty() {
            return Err(format!(
                "{}: declare the facts it needs (needs or needs_any)",
                r.id
            ));
        }
        Ok(())
    }

    /// The declared facts that `when` reads: those that decide the verdict.
    pub fn decisive_facts(&self, rule: &Rule) -> Vec<String> {
        let read = self
            .env
            .compile_expression(&rule.when)
            .map(|e| e.undeclared_variables(true))
            .unwrap_or_default();
        let mut facts: Vec<String> = rule
            .needs
            .iter()
            .chain(&rule.needs_any)
            .chain(&rule.uses)
            .filter(|d| read.iter().any(|v| covers(d, v) || covers(v, d)))
            .cloned()
            .collect();
        facts.sort();
        facts.dedup();
        facts
    }

    /// The input that provides a fact, if the table knows it.
    pub fn input_for(&self, fact: &str) -> Option<&Input> {
        self.inputs
            .iter()
            .filter_map(|i| {
                let best = i
                    .facts
                    .iter()
                    .filter(|p| covers(p, fact))
                    .map(|p| p.len())
                    .max()?;
                Some((best, i))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, i)| i)
    }

    /// Evaluates an expression of a rule over the facts.
    pub fn eval(&self, rule: &Rule, src: &str, ctx: &Value) -> Result<Value, String> {
        let expr = self
            .env
            .compile_expression(src)
            .map_err(|e| format!("{}: {e}", rule.id))?;
        expr.eval(ctx).map_err(|e| format!("{}: {e}", rule.id))
    }

    /// Renders a template of a rule over the facts.
    pub fn render(&self, rule: &Rule, src: &str, ctx: &Value) -> Result<String, String> {
        let tmpl = self
            .env
            .template_from_str(src)
            .map_err(|e| format!("{}: {e}", rule.id))?;
        tmpl.render(ctx)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .map_err(|e| format!("{}: {e}", rule.id))
    }
}

/// Whether fact path `prefix` is `path` or one of its ancestors.
pub fn covers(prefix: &str, path: &str) -> bool {
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// The expression environment: strict undefined, and filters that write numbers as people read
/// them.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Rule text is plain text; the HTML renderer escapes it.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("pct", pct);
    env.add_filter("num", num);
    env.add_filter("duration", duration);
    env.add_filter("pair", pair);
    env.add_filter("signed", signed);
    env
}

/// 0.9532 → `95.3%`; `digits=0` → `95%`.
pub fn pct(v: f64, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let digits: Option<usize> = kwargs.get("digits")?;
    kwargs.assert_all_used()?;
    let p = v * 100.0;
    let d = digits.unwrap_or(if p != 0.0 && p.abs() < 1.0 { 2 } else { 1 });
    let s = format!("{p:.d$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    Ok(format!("{s}%"))
}

/// 1234567 → `1,234,567`; floats keep up to two decimals.
pub fn num(v: Value) -> String {
    if let Some(i) = v.as_i64() {
        return group(i);
    }
    match f64::try_from(v.clone()) {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9e15 => group(f as i64),
        Ok(f) => {
            let s = format!("{f:.2}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            let int = int
                .parse::<i64>()
                .map(group)
                .unwrap_or_else(|_| int.to_string());
            if frac.is_empty() {
                int
            } else {
                format!("{int}.{frac}")
            }
        }
        Err(_) => v.to_string(),
    }
}

fn group(i: i64) -> String {
    let digits = i.unsigned_abs().to_string();
    let mut out = String::new();
    for (n, c) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if i < 0 { format!("-{out}") } else { out }
}

/// 1250 → `+1,250`, -3 → `-3`.
pub fn signed(v: Value) -> String {
    let s = num(v.clone());
    match f64::try_from(v) {
        Ok(f) if f > 0.0 => format!("+{s}"),
        _ => s,
    }
}

/// Seconds → `45 s`, `20 min`, `3.5 h`, `2.1 days`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 90.0 {
        format!("{} s", s.round())
    } else if s < 90.0 * 60.0 {
        format!("{} min", (s / 60.0).round())
    } else if s < 36.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

/// A pair fact → `10.244.1.5 → 10.96.0.20:80 (tcp)`; with names from cluster files,
/// `shop/web-1 (10.244.1.5) → shop/api (10.96.0.20:80 tcp)`.
pub fn pair(v: Value) -> Result<String, minijinja::Error> {
    let get = |k: &str| {
        v.get_attr(k)
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_none())
            .map(|x| x.to_string())
            .filter(|s| !s.is_empty())
    };
    let dst = get("dst").unwrap_or_default();
    let port = get("dport").unwrap_or_default();
    let proto = get("proto").unwrap_or_default();
    let dst = if dst.contains(':') {
        format!("[{dst}]")
    } else {
        dst
    };
    let src = match (get("src_name"), get("src")) {
        (Some(name), Some(ip)) => Some(format!("{name} ({ip})")),
        (_, ip) => ip,
    };
    let dst = match get("dst_name") {
        Some(name) => format!("{name} ({dst}:{port} {proto})"),
        None => format!("{dst}:{port} ({proto})"),
    };
    Ok(match src {
        Some(src) => format!("{src} → {dst}"),
        None => dst,
    })
}

/// The facts as a template context.
pub fn context(facts: &serde_json::Value) -> Value {
    Value::from(Serde(facts))
}

/// Shorthand for tests and tools: the embedded rules.
pub fn embedded() -> Result<RuleSet, RuleError> {
    RuleSet::load(None)
}

/// Rule ids by file, for listing.
pub fn by_layer(set: &RuleSet) -> BTreeMap<&str, Vec<&Rule>> {
    let mut m: BTreeMap<&str, Vec<&Rule>> = BTreeMap::new();
    for r in &set.rules {
        m.entry(r.layer.as_str()).or_default().push(r);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_write_numbers_as_people_read_them() {
        let env = environment();
        let render = |t: &str| env.render_str(t, minijinja::context! {}).expect("render");
        assert_eq!(render("{{ 0.9532 | pct }}"), "95.3%");
        assert_eq!(render("{{ 1.0 | pct }}"), "100%");
        assert_eq!(render("{{ 0.004 | pct }}"), "0.4%");
        assert_eq!(render("{{ 1234567 | num }}"), "1,234,567");
        assert_eq!(render("{{ 12.5 | num }}"), "12.5");
        assert_eq!(render("{{ 1250 | signed }}"), "+1,250");
        assert_eq!(render("{{ 1200 | duration }}"), "20 min");
        assert_eq!(
            render(
                "{{ {'src': '10.0.0.1', 'dst': '10.96.0.1', 'dport': 443, 'proto': 'tcp'} | pair }}"
            ),
            "10.0.0.1 → 10.96.0.1:443 (tcp)"
        );
        assert_eq!(
            render(
                "{{ {'src': '10.244.1.5', 'src_name': 'shop/web-1', 'dst': '10.96.0.20', 'dst_name': 'shop/api', 'dport': 80, 'proto': 'tcp'} | pair }}"
            ),
            "shop/web-1 (10.244.1.5) → shop/api (10.96.0.20:80 tcp)"
        );
    }

    #[test]
    fn covers_matches_whole_path_segments() {
        assert!(covers("nf.stats", "nf.stats.drop"));
        assert!(covers("nf.stats.drop", "nf.stats.drop"));
        assert!(!covers("nf.stat", "nf.stats.drop"));
    }

    fn file(name: &str, text: String, builtin: bool) -> RuleFile {
        RuleFile {
            name: name.into(),
            text,
            builtin,
        }
    }

    fn rule(extra: &str) -> String {
        format!(
            "id = \"t.x\"\ntitle = \"t\"\nlayer = \"netfilter\"\nkind = \"contributor\"\nseverity = \"info\"\n\
             needs = [\"nf.count\"]\nwhen = \"nf.count > 1\"\nscore = \"50\"\nsummary = \"s\"\nthreshold = \"t\"\n{extra}"
        )
    }

    #[test]
    fn a_rule_reading_an_undeclared_fact_is_refused() {
        let bad = rule("").replace("nf.count > 1", "nf.max > 1");
        let err = RuleSet::from_files(vec![file("x.toml", bad, false)]).expect_err("undeclared");
        assert!(err.to_string().contains("nf.max"), "{err}");
    }

    #[test]
    fn a_cause_without_mitigation_is_refused() {
        let bad = rule("").replace("contributor", "cause");
        let err = RuleSet::from_files(vec![file("x.toml", bad, false)]).expect_err("no mitigation");
        assert!(err.to_string().contains("mitigation"), "{err}");
    }

    #[test]
    fn a_later_file_overrides_by_id() {
        let set = RuleSet::from_files(vec![
            file("rules/x.toml", rule(""), true),
            file(
                "/mine/x.toml",
                rule("").replace("title = \"t\"", "title = \"mine\""),
                false,
            ),
        ])
        .expect("load");
        assert_eq!(set.rules.len(), 1);
        assert_eq!(set.rules[0].title, "mine");
        let twice = RuleSet::from_files(vec![
            file("a.toml", rule(""), false),
            file("b.toml", rule(""), false),
        ]);
        assert!(
            twice
                .expect_err("duplicate")
                .to_string()
                .contains("also defined in a.toml")
        );
    }

    #[test]
    fn unknown_fields_name_the_file() {
        let err = RuleSet::from_files(vec![file("my.toml", rule("colour = \"red\""), false)])
            .expect_err("unknown field");
        assert!(err.to_string().starts_with("my.toml:"), "{err}");
    }
}
