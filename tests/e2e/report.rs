//! The report as people read it: hostile bundle text comes out escaped in every format, the HTML
//! references nothing outside itself, and it renders in a real browser (Debian's headless
//! chromium) with JavaScript off, showing the cause and the quoted evidence.

use crate::browser;
use crate::util::*;
use std::path::{Path, PathBuf};

/// Hostile text in every place a bundle can put text: a host name, kernel-log lines, a
/// malformed sysctl line (quoted as a problem), a manifest node name.
fn hostile_bundle() -> Fixture {
    Fixture::new()
        .file(
            "uname",
            "Linux <script>alert(1)</script> 6.1.0-28-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\n",
        )
        .file(
            "kern.log",
            "[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet <script>alert(\"x\")</script></style><img src=x onerror=alert(1)>\n\
             [ 8350.100000] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet \u{1b}[31mred\u{1b}[0m `rm -rf` [link](http://evil.example)\n",
        )
        .file(
            "sysctl",
            format!("{}\"><svg onload=alert(1)> = <b>\n", sysctl(5000, Some(5000))),
        )
        .file("stats", stats(2, 40, 0, 0))
}

fn html_of(dir: &Path) -> String {
    let out_file = dir.join("report.html");
    let out = ctdiag(&[
        "analyze",
        "-o",
        &out_file.display().to_string(),
        &dir.display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(out_file).expect("report written")
}

#[test]
fn hostile_text_is_escaped_in_html_and_nothing_outside_is_referenced() {
    let fx = hostile_bundle();
    let html = html_of(fx.path());
    let lower = html.to_ascii_lowercase();
    assert_eq!(lower.matches("<script").count(), 0, "a script tag survived");
    assert!(!lower.contains("<img"), "an img tag survived");
    assert!(!lower.contains("<svg onload"), "an svg handler survived");
    assert!(
        html.contains("dropping packet &lt;script&gt;alert(&quot;x&quot;)&lt;&#x2f;script&gt;&lt;&#x2f;style&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "dmesg line not quoted escaped"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "host name not escaped"
    );
    // Self-contained: no element loads anything, no link leaves the page.
    let tags =
        regex::Regex::new(r#"(?i)<[a-z][^>]*?\s(src|href|action|data|srcset)\s*=\s*"?([^"\s>]*)"#)
            .expect("regex");
    for c in tags.captures_iter(&html) {
        assert!(
            &c[1] == "href" && c[2].starts_with('#'),
            "external reference: {}",
            &c[0]
        );
    }
    for needle in [
        "url(", "@import", "<link", "<iframe", "<object", "<embed", "<base",
    ] {
        assert!(!lower.contains(needle), "{needle} in the report");
    }
    assert!(html.contains(
        "http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-"
    ));
}

#[test]
fn hostile_text_stays_inert_in_markdown_and_on_the_terminal() {
    let fx = hostile_bundle();
    let p = fx.path().display().to_string();
    let md = String::from_utf8(ctdiag(&["analyze", "--format", "md", &p]).stdout).expect("utf-8");
    for line in md.lines().filter(|l| l.contains('<')) {
        // Every angle bracket from the bundle sits inside a code span.
        let outside: String = line.split('`').step_by(2).collect();
        assert!(!outside.contains('<'), "markup outside a code span: {line}");
    }
    for line in md.lines() {
        let outside: String = line.split('`').step_by(2).collect();
        assert!(!outside.contains("](http"), "a link survived: {line}");
    }
    let text = ctdiag(&["analyze", "--format", "text", "--color", "always", &p]).stdout;
    let raw = String::from_utf8_lossy(&text);
    // Our own colours use ESC; the bundle's must arrive escaped.
    assert!(raw.contains("\\u{1b}[31mred"), "{raw}");
    assert!(
        !raw.contains("\u{1b}[31mred"),
        "a raw escape sequence from the bundle reached the terminal"
    );
}

#[test]
fn markdown_summary_fits_80_lines_and_names_cause_evidence_and_first_step() {
    let table = Table::new().tcp(4000, "TIME_WAIT", 3, "10.96.0.20", 80, "10.244.2.7");
    let many: Vec<Fixture> = (0..12)
        .map(|i| {
            Fixture::new()
                .file(
                    "uname",
                    format!("Linux worker-{i} 6.1.0 #1 SMP x86_64 GNU/Linux\n"),
                )
                .file(
                    "dmesg",
                    "[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet\n",
                )
                .file("sysctl", sysctl(4000, Some(4000)))
                .file("stats", stats(2, 100, 0, 0))
                .file("list", table.text())
        })
        .collect();
    let one = ctdiag(&[
        "analyze",
        "--format",
        "md",
        &many[0].path().display().to_string(),
    ]);
    let md = String::from_utf8(one.stdout).expect("utf-8");
    assert!(md.lines().count() <= 80, "{} lines", md.lines().count());
    assert!(
        md.contains("**Likely cause: `nf.table_exhausted`**"),
        "{md}"
    );
    assert!(
        md.contains(
            "`dmesg:1` `[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet`"
        ),
        "{md}"
    );
    assert!(md.contains("First safe step:"), "{md}");
    assert!(
        md.contains("sysctl -w net.netfilter.nf_conntrack_max=8000"),
        "{md}"
    );
    let paths: Vec<String> = many
        .iter()
        .map(|f| f.path().display().to_string())
        .collect();
    let mut args = vec!["analyze", "--format", "md"];
    args.extend(paths.iter().map(String::as_str));
    let md = String::from_utf8(ctdiag(&args).stdout).expect("utf-8");
    assert!(
        md.lines().count() <= 80,
        "{} lines for 12 nodes",
        md.lines().count()
    );
    assert!(md.contains("nf.table_exhausted"));
}

fn need_chromium() -> Option<PathBuf> {
    match browser::find() {
        Ok(p) => Some(p),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}: CI must run the browser test")
        }
        Err(why) => {
            eprintln!("skipping the browser test: {why}");
            None
        }
    }
}

#[test]
fn the_report_renders_in_headless_chromium_with_javascript_off() {
    let Some(chromium) = need_chromium() else {
        return;
    };
    let mut b = browser::Browser::start(&chromium);
    // Script execution really is off: a control page whose script would rewrite the DOM.
    let control_dir = tempfile::tempdir().expect("tempdir");
    let control = control_dir.path().join("control.html");
    std::fs::write(&control, "<html><body><p id=x>static</p><script>document.getElementById('x').textContent='scripted'</script></body></html>").expect("write");
    b.open(&control);
    assert!(
        b.dom().contains(">static<"),
        "JavaScript ran although it is disabled"
    );

    let fx = hostile_bundle();
    html_of(fx.path());
    let page = fx.path().join("report.html");
    b.open(&page);
    let rendered = b.dom();
    assert!(
        rendered.contains("nf.table_exhausted"),
        "cause id missing from the rendered DOM"
    );
    assert!(
        rendered.contains("[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet &lt;script&gt;alert(\"x\")&lt;/script&gt;"),
        "quoted dmesg evidence missing or unescaped in the rendered DOM"
    );
    assert!(rendered.contains("kern.log:1"), "evidence location missing");
    assert_eq!(
        rendered.to_ascii_lowercase().matches("<script").count(),
        0,
        "a script element exists in the DOM"
    );
    let shot = screenshot_dir().join("hostile-bundle.png");
    b.screenshot(1280, &shot);
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
}

#[test]
fn every_sample_report_renders_in_chromium_and_is_photographed() {
    let Some(chromium) = need_chromium() else {
        return;
    };
    let mut b = browser::Browser::start(&chromium);
    let shots = screenshot_dir();
    let out = tempfile::tempdir().expect("tempdir");
    for (case, bundle, expected) in crate::samples::samples() {
        let page = out.path().join(format!("{case}.html"));
        let run = ctdiag(&[
            "analyze",
            "-o",
            &page.display().to_string(),
            &bundle.display().to_string(),
        ]);
        assert!(run.status.success(), "{case}: {run:?}");
        b.open(&page);
        let dom = b.dom();
        match expected["likely_cause"].as_str() {
            Some(id) => assert!(
                dom.contains(&format!("<div class=\"id\">{id}</div>")),
                "{case}: {id} not shown as the likely cause"
            ),
            None => assert!(dom.contains("No cause found"), "{case}"),
        }
        b.screenshot(1280, &shots.join(format!("{case}.png")));
    }
}

/// Where screenshots of reports are left for people to look at: `target/report-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|t| t.join("report-screenshots"))
        .expect("target dir");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}
