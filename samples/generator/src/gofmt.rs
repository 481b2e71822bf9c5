//! Go's text formatting, for the members printed by Go programs (Cilium, kube-proxy): the
//! `text/tabwriter` column alignment, `strconv.FormatFloat(f, 'g', -1, 64)` as the Prometheus
//! client prints sample values, and `time.Duration.String()`.
//!
//! The tabwriter is a port of Go's algorithm (flags 0, a space as the pad character): a cell is
//! text terminated by a TAB, the last cell of a line is not part of any column, and a column
//! block is a run of consecutive lines that have a cell in that column; its width is the widest
//! cell plus the padding, at least `minwidth`. So a line without a TAB ends every block above it,
//! and a line ending in a TAB gets trailing blanks — both as the real tools print.

/// Go `tabwriter.NewWriter(out, minwidth, _, padding, ' ', 0)` over `text`, flushed.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn format(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut start = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, start, this, widths, out);
        let block = this;
        let mut w = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(w);
        format(lines, block, this, widths, minwidth, padding, out);
        widths.pop();
        start = this;
    }
    write_lines(lines, start, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                for _ in width(cell)..widths[j] {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
}

/// `strconv.FormatFloat(v, 'g', -1, 64)`: the shortest digits that read back as `v`, in `%e`
/// form when the exponent is below -4 or at least 6 — as Prometheus' Go client writes values
/// (`1.7639052123456788e+09`, `4521`, `0.25`).
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `1.2345e6`.
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // strconv's shortest 'g' switches to %e at exponent 6 (not 21, which is fmt's %v).
    let eprec = 6;
    if exp < -4 || exp >= eprec {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

/// Go's `time.Duration.String()` of whole nanoseconds: `7m30s`, `12h0m0s`, `5m0.002279235s`,
/// `750ms`, `0s`.
pub fn go_duration(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            return format!("{nanos}ns");
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{}{unit}", nanos / div, frac(nanos % div, div));
    }
    let secs = nanos / 1_000_000_000;
    let rest = nanos % 1_000_000_000;
    let s = format!("{}{}s", secs % 60, frac(rest, 1_000_000_000));
    if secs >= 3600 {
        format!("{}h{}m{s}", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{s}", secs / 60)
    } else {
        s
    }
}

/// `.002279235` for 2279235 of 1e9; empty for 0; trailing zeros dropped.
fn frac(part: u64, whole: u64) -> String {
    if part == 0 {
        return String::new();
    }
    let width = whole.ilog10() as usize;
    let s = format!("{part:0width$}");
    format!(".{}", s.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_aligns_blocks_and_pads_tab_terminated_cells() {
        // cilium-dbg bpf metrics list: NewWriter(os.Stdout, 5, 0, 3, ' ', 0).
        let t = tabwrite(
            "REASON\tDIRECTION\tPACKETS\tBYTES\tLINE\tFILE\nCT: Map insertion failed\tEGRESS\t12\t840\t1421\tbpf_lxc.c\n",
            5,
            3,
        );
        assert_eq!(
            t,
            "REASON                     DIRECTION   PACKETS   BYTES   LINE   FILE\n\
             CT: Map insertion failed   EGRESS      12        840     1421   bpf_lxc.c\n"
        );
        // A line without a tab ends the block; a trailing tab pads an empty last cell.
        let t = tabwrite("a:\tx\nlonger key:\ty\nbreak\nb:\tz\t\n", 2, 3);
        assert_eq!(t, "a:            x\nlonger key:   y\nbreak\nb:   z   \n");
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(4521.0), "4521");
        assert_eq!(go_float(0.25), "0.25");
        assert_eq!(go_float(1_234_567.0), "1.234567e+06");
        assert_eq!(go_float(1_763_905_212.345_678_8), "1.7639052123456788e+09");
        assert_eq!(go_float(0.000_015), "1.5e-05");
        assert_eq!(go_float(100_000.0), "100000");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(450_000_000_000), "7m30s");
        assert_eq!(go_duration(43_200_000_000_000), "12h0m0s");
        assert_eq!(go_duration(300_002_279_235), "5m0.002279235s");
        assert_eq!(go_duration(750_000_000), "750ms");
        assert_eq!(go_duration(12_000_000_000), "12s");
    }
}
