//! `--help` of every subcommand: each example is a command and its
//! description in two columns. A command too long for its column stands on
//! its own line, with the description on the next, in the column; nothing is
//! wrapped by clap into what looks like a command of its own.

use crate::util::*;

/// The Examples block of `sockit ARGS --help`.
fn examples(args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--help");
    let out = run(&all, b"");
    assert!(out.status.success(), "{args:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .skip_while(|l| *l != "Examples:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Where the description starts in `line` (after the command and 2+ spaces).
fn desc_col(line: &str) -> Option<usize> {
    let body = line.strip_prefix("  ")?;
    let gap = body.find("  ")?;
    let rest = &body[gap..];
    Some(2 + gap + (rest.len() - rest.trim_start().len()))
}

#[test]
fn examples_keep_commands_and_descriptions_apart() {
    for args in [
        &[][..],
        &["connect"],
        &["listen"],
        &["relay"],
        &["chat"],
        &["chat", "serve"],
        &["chat", "join"],
        &["http"],
        &["ping"],
    ] {
        let lines = examples(args);
        assert!(!lines.is_empty(), "{args:?}: no examples");
        // The block's column: where most descriptions start.
        let mut cols: Vec<usize> = lines.iter().filter_map(|l| desc_col(l)).collect();
        cols.sort_unstable();
        let col = cols[cols.len() / 2];
        let mut i = 0;
        while i < lines.len() {
            let l = &lines[i];
            assert!(l.len() <= 100, "{args:?}: over 100 columns: {l:?}");
            assert!(l.starts_with("  "), "{args:?}: {l:?}");
            match desc_col(l) {
                Some(c) if !l[2..].starts_with(' ') => {
                    assert_eq!(c, col, "{args:?}: description out of its column: {l:?}");
                    i += 1;
                }
                _ => {
                    // A command alone: the next line is its description, in the column.
                    let next = lines.get(i + 1).map(String::as_str).unwrap_or("");
                    let indent = next.len() - next.trim_start().len();
                    assert!(
                        indent == col && !next.trim().is_empty(),
                        "{args:?}: {l:?} has no description (next: {next:?})"
                    );
                    i += 2;
                }
            }
        }
    }
}
