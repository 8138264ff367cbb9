//! `-o FILE` on the verbs that write a file: `images save -o a.tar` and `images lock -o
//! lock.yaml` (as `docker save -o`), and `report -o bundle.zip`, while `-o` is the output format
//! everywhere else. Before clap parses the command line, `-o VALUE` where VALUE is not a format
//! becomes `--output-file VALUE` for those verbs only.

use std::ffi::OsString;

/// The values `-o` takes as a format.
const FORMATS: [&str; 3] = ["table", "json", "yaml"];

/// The global flags that take a value as the next argument (skipped when looking for the verb).
const GLOBAL_WITH_VALUE: [&str; 10] = [
    "--kubeconfig",
    "--context",
    "-n",
    "--namespace",
    "-e",
    "--env",
    "--release",
    "-o",
    "--output",
    "--helm",
];

/// The command line with `-o FILE` of `images save|lock` and `report` rewritten to
/// `--output-file FILE`; any other command line as it is.
pub fn rewrite_output_file(args: Vec<OsString>) -> Vec<OsString> {
    let Some(verb_at) = file_writing_verb(&args) else {
        return args;
    };
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter().enumerate().peekable();
    while let Some((i, arg)) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        if i > verb_at {
            if (text == "-o" || text == "--output")
                && let Some((_, value)) = iter.peek()
                && !FORMATS.contains(&value.to_string_lossy().as_ref())
            {
                out.push(OsString::from("--output-file"));
                continue;
            }
            let attached = text
                .strip_prefix("-o=")
                .or_else(|| text.strip_prefix("--output="));
            if let Some(value) = attached
                && !FORMATS.contains(&value)
            {
                out.push(OsString::from(format!("--output-file={value}")));
                continue;
            }
        }
        out.push(arg);
    }
    out
}

/// Where the verb that writes a file is: `report`, or `save`/`lock` after `images`.
fn file_writing_verb(args: &[OsString]) -> Option<usize> {
    let positionals = positionals(args);
    let (first_at, first) = positionals.first()?;
    match first.as_str() {
        "report" => Some(*first_at),
        "images" => positionals
            .iter()
            .skip(1)
            .find(|(_, word)| word == "save" || word == "lock")
            .map(|(at, _)| *at),
        _ => None,
    }
}

/// The words that are neither flags nor the values of the global flags before them, with their
/// index (the program name left out).
fn positionals(args: &[OsString]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for (i, arg) in args.iter().enumerate().skip(1) {
        let text = arg.to_string_lossy();
        if skip_value {
            skip_value = false;
        } else if text.starts_with('-') {
            skip_value = GLOBAL_WITH_VALUE.contains(&text.as_ref());
        } else {
            out.push((i, text.into_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(line: &str) -> String {
        let args = line.split(' ').map(OsString::from).collect();
        rewrite_output_file(args)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn dash_o_names_the_file_only_for_save_lock_and_report() {
        assert_eq!(
            rewrite("k images save --env prod -o a.tar"),
            "k images save --env prod --output-file a.tar"
        );
        assert_eq!(
            rewrite("k images lock -o=lock.yaml --registry h"),
            "k images lock --output-file=lock.yaml --registry h"
        );
        assert_eq!(
            rewrite("k images save -o json --output-file a.tar"),
            "k images save -o json --output-file a.tar"
        );
        assert_eq!(
            rewrite("k images mirror -o out.tar"),
            "k images mirror -o out.tar"
        );
        assert_eq!(rewrite("k status -o x"), "k status -o x");
        assert_eq!(rewrite("k -o x images save"), "k -o x images save");
        assert_eq!(
            rewrite("k report --env dev -o b.zip"),
            "k report --env dev --output-file b.zip"
        );
        assert_eq!(
            rewrite("k --env dev report -o json --output-file b.zip"),
            "k --env dev report -o json --output-file b.zip"
        );
        // `report` as the value of a global flag is not the verb.
        assert_eq!(
            rewrite("k -n report status -o x"),
            "k -n report status -o x"
        );
        assert_eq!(
            rewrite("k workflow logs report -o x"),
            "k workflow logs report -o x"
        );
    }
}
