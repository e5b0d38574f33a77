#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::{io::Read, path::PathBuf, process::ExitCode};

use authd::{
    cli::{self, Cli},
    telemetry::LogTarget,
};
use clap::error::ErrorKind;

fn main() -> ExitCode {
    // Before clap reads the environment, and before logging exists (hence plain stderr).
    match load_dotenv() {
        Ok(Some(path)) => eprintln!("authd: read configuration from {}", path.display()),
        Ok(None) => {}
        Err(msg) => {
            eprintln!("authd: {msg}");
            return ExitCode::from(2);
        }
    }
    let cli = match Cli::try_parse_from_sources(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            ) =>
        {
            // One clear line naming the variable (clap's value names are the env var names).
            let rendered = e.render().to_string();
            eprintln!(
                "authd: {}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            // Usage errors (a missing argument, an unknown subcommand) whole: their detail is on
            // the following lines.
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let (config, command) = cli.into_parts();
    if let Err(msg) = config.validate() {
        eprintln!("authd: invalid configuration: {msg}");
        return ExitCode::from(2);
    }
    let serving = command.is_none();
    authd::telemetry::init(
        config.log_format,
        if serving {
            LogTarget::Stdout
        } else {
            LogTarget::Stderr
        },
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(config, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once on stderr, as one plain line. A server's log (stdout) also records it, for
            // whoever collects the logs; an admin command's log is stderr itself, so not twice.
            if serving {
                tracing::error!(error = format!("{e:#}"), "fatal");
            }
            eprintln!("authd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `.env` in the working directory into the environment, and only that file: never one
/// from a parent directory (`dotenvy::dotenv` and `from_filename` search upwards, so a `.env`
/// planted above the working directory could set `AUTHD_PASSWORD` for `authd user add --admin`
/// or switch the rate limits off).
///
/// Variables already in the environment win over the file; within the file the first occurrence
/// wins (dotenvy's rules). Returns the absolute path read, or `None` when there is no such file.
/// A file that cannot be read or has a malformed line is an error naming the file and the line
/// (never its content, which may hold secrets); the whole file is checked before anything is set,
/// so a bad line cannot silently drop the variables after it.
fn load_dotenv() -> Result<Option<PathBuf>, String> {
    let path = std::path::absolute(".env").unwrap_or_else(|_| PathBuf::from(".env"));
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let content = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    if let Err((line, what)) = check_dotenv(content) {
        return Err(format!("{} line {line}: {what}", path.display()));
    }
    // The check above parsed the same bytes, so loading cannot fail; dotenvy sets the variables
    // (only those not already set) while the process is still single-threaded.
    dotenvy::from_read(content).map_err(|_| format!("{}: cannot be loaded", path.display()))?;
    Ok(Some(path))
}

/// Parses a `.env` file with dotenvy without setting anything. The error is the 1-based number
/// of the (first physical) line of the first malformed entry and what is wrong with it.
fn check_dotenv(content: &[u8]) -> Result<(), (usize, &'static str)> {
    let mut reader = LineReader {
        rest: content,
        lines: 0,
    };
    let Some(error) = dotenvy::from_read_iter(&mut reader).find_map(Result::err) else {
        return Ok(());
    };
    // dotenvy reads the file line by line and reports the offending entry's text, not its line
    // number; `reader.lines` is the last line it read (the entry's last line, as an entry with a
    // quoted value may span several), and the entry's own line breaks lead back to its first.
    let last = reader.lines.max(1);
    match error {
        dotenvy::Error::LineParse(entry, _) => {
            let breaks = entry.matches('\n').count();
            let spans = if entry.ends_with('\n') {
                breaks
            } else {
                breaks + 1
            };
            Err((
                (last + 1).saturating_sub(spans).max(1),
                "malformed line (expected NAME=value, quotes closed)",
            ))
        }
        dotenvy::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err((last, "not valid UTF-8"))
        }
        _ => Err((last, "cannot be parsed")),
    }
}

/// Hands out at most one line per `read`, so that the number of lines dotenvy's buffered reader
/// has consumed is exactly the number it has asked for.
struct LineReader<'a> {
    rest: &'a [u8],
    /// Complete lines handed out so far.
    lines: usize,
}

impl Read for LineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let line_end = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.rest.len(), |i| i + 1);
        let n = line_end.min(buf.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        if n > 0 && n == line_end {
            self.lines += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::check_dotenv;

    #[test]
    fn a_valid_file_passes() {
        let file = "# comment\n\nA=1\nexport B='two'\nC=\"multi\nline\"\nD=4 # note\n";
        assert_eq!(check_dotenv(file.as_bytes()), Ok(()));
        assert_eq!(check_dotenv(b""), Ok(()));
        assert_eq!(check_dotenv(b"A=1"), Ok(()));
    }

    #[test]
    fn names_the_line_of_the_first_bad_entry() {
        let line = |file: &str| check_dotenv(file.as_bytes()).map_err(|(line, _)| line);
        assert_eq!(line("not a pair\n"), Err(1));
        assert_eq!(line("A=1\n# c\n\nB=2\nthis is wrong\nC=3\n"), Err(5));
        assert_eq!(line("A=1\r\nB C\r\n"), Err(2));
        // After a multi-line value, and a multi-line value that is itself bad.
        assert_eq!(line("A=\"x\ny\"\nB=1\n-C=2\n"), Err(4));
        assert_eq!(line("A=1\nB=\"x\ny\" junk\nC=3\n"), Err(2));
        // An unclosed quote runs to the end of the file: the line where it opened.
        assert_eq!(line("A=1\nB=\"open\nC=3\nD=4\n"), Err(2));
        assert_eq!(line("A=1\nB=\"open"), Err(2));
        // Lines longer than dotenvy's read buffer.
        let long = format!("A={}\nB={}\nbad\n", "x".repeat(20_000), "y".repeat(9_000));
        assert_eq!(line(&long), Err(3));
        // Not UTF-8.
        assert_eq!(
            check_dotenv(b"A=1\nB=\xff\xfe\n"),
            Err((2, "not valid UTF-8"))
        );
    }
}
