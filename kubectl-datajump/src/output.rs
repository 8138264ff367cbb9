//! One answer, three renderings: every read command builds one `Serialize` struct and hands it
//! here; people get aligned columns, scripts get JSON or YAML of the very same struct. Progress goes
//! to stderr and only when a person is watching.

use std::io::{IsTerminal, Write};

use comfy_table::{Table, presets};
use serde::Serialize;

/// How read commands print their answer (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Aligned columns (or a tree) for people.
    Table,
    /// JSON for scripts.
    Json,
    /// YAML for scripts.
    Yaml,
}

/// What the user asked of the answer on stdout: its format, and whether `--no-color` was given
/// (colour also needs a terminal and no `NO_COLOR`, decided when printing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub format: Format,
    pub no_color: bool,
}

/// An answer that can also be shown as a table.
pub(crate) trait Render: Serialize {
    /// The human rendering (a table, or a tree for DAGs). Ends with a newline.
    fn human(&self, style: &Style) -> String;
}

/// Colour choice for human output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    pub color: bool,
}

impl Style {
    /// Colours a state word: green for good, red for bad, yellow for in-between.
    pub(crate) fn state(&self, word: &str) -> String {
        if !self.color {
            return word.to_string();
        }
        let code = match word {
            "Ready" | "Succeeded" | "deployed" | "Complete" | "verified" | "True" | "ok" => "32",
            "Failed" | "Terminated" | "NotReady" | "failed" | "Missing" | "corrupt" | "False" => {
                "31"
            }
            _ => "33",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    }
}

/// Renders an answer in the requested format.
pub(crate) fn render<T: Render>(
    answer: &T,
    format: Format,
    style: &Style,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table => answer.human(style),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(answer)?;
            s.push('\n');
            s
        }
        Format::Yaml => serde_yaml::to_string(answer)?,
    })
}

/// Renders and prints an answer on stdout, as `settings` (or the command line they come from)
/// ask.
pub(crate) fn print<T: Render>(answer: &T, settings: impl Into<Settings>) -> anyhow::Result<()> {
    let settings = settings.into();
    let text = render(answer, settings.format, &style_for(settings))?;
    write_stdout(text.as_bytes())
}

/// stdout's reader went away (`kubectl datajump … | head -1`): nothing is wrong, the command
/// ends quietly (exit 0, as ripgrep does) instead of panicking the way `println!` would.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub(crate) struct StdoutClosed;

/// Writes to stdout; a closed pipe is [`StdoutClosed`], not a panic. Every answer, drawing and
/// script the plugin prints goes through here.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

/// The answer of a verb that changed one object: the line people read
/// (`workflow.datajump.io/etl suspended`) and, for scripts, what changed and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Changed {
    /// `Workflow`, `WorkflowRun`, `Release`.
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    /// `applied`, `created`, `suspended`, `resumed`, `deleted`, `uninstalled`.
    pub action: &'static str,
    /// What a person reads.
    #[serde(skip)]
    pub line: String,
}

impl Changed {
    /// A change worded as kubectl words it: `<resource>/<name> <action><remark>`
    /// (`workflow.datajump.io/etl applied in datajump-dev`).
    pub(crate) fn object(
        kind: &'static str,
        resource: &str,
        name: &str,
        namespace: &str,
        action: &'static str,
        remark: &str,
    ) -> Self {
        Self {
            kind,
            name: name.to_string(),
            namespace: namespace.to_string(),
            action,
            line: format!("{resource}/{name} {action}{remark}"),
        }
    }
}

impl Render for Changed {
    fn human(&self, _: &Style) -> String {
        format!("{}\n", self.line)
    }
}

/// Colour only on a terminal and when neither --no-color nor NO_COLOR asked otherwise.
/// `NO_COLOR` set to any non-empty value turns colour off (<https://no-color.org>).
fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

pub(crate) fn style_for(settings: Settings) -> Style {
    Style {
        color: !settings.no_color && !no_color_env() && std::io::stdout().is_terminal(),
    }
}

/// Aligned columns with a header row, like kubectl's tables: no borders, three spaces between
/// columns, no trailing spaces, widths from the content alone (never the terminal's). Cells are
/// measured by their display width without colour escapes, so coloured states and wide
/// characters keep the columns straight, and a cell with a line break stays inside its column.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .force_no_tty()
        .set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row.iter().map(String::as_str));
    }
    let last = table.column_count().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i < last { 3 } else { 0 }));
    }
    let mut out = table.trim_fmt();
    out.push('\n');
    out
}

/// Progress lines on stderr: shown only on a terminal and never with `-o json`/`-o yaml`, so
/// scripts reading stdout or stderr see nothing but the answer and errors.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Decides once per command whether progress is shown, given the answer's format.
    pub(crate) fn new(format: Format) -> Self {
        Self::with(format == Format::Table && std::io::stderr().is_terminal())
    }

    /// Explicit on/off (tests, and commands that never show progress).
    pub fn with(enabled: bool) -> Self {
        Self { enabled }
    }

    /// Prints one progress line.
    pub fn line(&self, msg: impl AsRef<str>) {
        if self.enabled {
            eprintln!("{}", msg.as_ref());
        }
    }
}

/// A human age like kubectl's: `45s`, `12m`, `5h`, `3d`.
pub(crate) fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Answer {
        name: String,
        ready: bool,
    }

    impl Render for Answer {
        fn human(&self, style: &Style) -> String {
            let state = if self.ready { "Ready" } else { "NotReady" };
            table(
                &["NAME", "STATE"],
                &[vec![self.name.clone(), style.state(state)]],
            )
        }
    }

    #[test]
    fn one_struct_three_formats() {
        let a = Answer {
            name: "web".into(),
            ready: true,
        };
        let plain = Style { color: false };
        assert_eq!(
            render(&a, Format::Table, &plain).unwrap(),
            "NAME   STATE\nweb    Ready\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&a, Format::Json, &plain).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"name": "web", "ready": true}));
        assert_eq!(
            render(&a, Format::Yaml, &plain).unwrap(),
            "name: web\nready: true\n"
        );
    }

    /// Length without ANSI colour escapes.
    fn visible_len(s: &str) -> usize {
        let mut len = 0;
        let mut in_escape = false;
        for c in s.chars() {
            match (in_escape, c) {
                (false, '\x1b') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, _) => len += 1,
            }
        }
        len
    }

    #[test]
    fn coloured_cells_keep_columns_aligned() {
        let style = Style { color: true };
        let t = table(
            &["STATE", "NAME"],
            &[
                vec![style.state("Ready"), "a".into()],
                vec![style.state("Failed"), "b".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(visible_len(lines[1]), visible_len(lines[2]));
        assert!(lines[1].contains("\x1b[32mReady\x1b[0m"));
    }

    #[test]
    fn rows_end_without_spaces_and_wide_characters_take_two_columns() {
        let t = table(
            &["NAME", "SIZE", "REASON"],
            &[
                vec!["b1".into(), "2.0 KiB".into(), String::new()],
                vec!["数据".into(), "-".into(), "corrupt".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME   SIZE      REASON\nb1     2.0 KiB\n数据   -         corrupt\n"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(5 * 86_400), "5d");
    }
}
