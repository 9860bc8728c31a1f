//! Errors that decide the exit status.
//!
//! Bad input (a flag value, a missing capability the user must fix first) is an
//! [`InputError`] and exits with status 2 before anything is changed. A run that was
//! interrupted exits with 128 + the signal number once everything is put back. Anything else
//! exits with 1.

/// The user asked for something that cannot work; the message names the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// SIGINT or SIGTERM arrived; the run stopped and cleaned up.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}, kernel state restored", signal_name(*.0))]
pub struct Interrupted(pub i32);

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// A TOML parse error of `text` on one line, `line L, column C: what` (the library's own
/// message spans several lines, quoting the source).
pub fn toml_error_line(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Shorthand for returning an [`InputError`].
pub fn input_error<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(InputError(message.into()).into())
}

/// The process exit status for an error.
pub fn exit_status(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<InputError>().is_some() {
        2
    } else if let Some(Interrupted(signal)) = err.downcast_ref::<Interrupted>() {
        128 + signal
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_toml_error_is_one_line_with_its_place() {
        let text = "a = 1\nb = [\n";
        let err = toml::from_str::<toml::Value>(text).unwrap_err();
        let line = super::toml_error_line(text, &err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("line 2, column"), "{line}");
    }
}
