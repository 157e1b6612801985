//! One place that sets up `tracing` for the CLI and the Lambdas, so a deployment's
//! `MURSST_LOG_FORMAT` means the same to both.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// How log lines are written: JSON for CloudWatch Logs Insights, text for a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(format!(
                "MURSST_LOG_FORMAT: {other:?} is neither \"json\" nor \"text\""
            )),
        }
    }
}

impl LogFormat {
    /// `MURSST_LOG_FORMAT` if set (and valid), else `default`.
    pub fn from_env(default: Self) -> Result<Self, String> {
        match std::env::var("MURSST_LOG_FORMAT") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(default),
        }
    }
}

/// Install the process's subscriber: `RUST_LOG` if set, else `default_filter`. In a
/// Lambda, lines go to standard output without timestamps (CloudWatch stamps each line);
/// elsewhere to standard error, leaving standard output to the command's result.
pub fn init(format: LogFormat, default_filter: &str, lambda: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let writer = if lambda {
        BoxMakeWriter::new(std::io::stdout)
    } else {
        BoxMakeWriter::new(std::io::stderr)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(!lambda);
    match (format, lambda) {
        (LogFormat::Json, true) => builder.json().without_time().init(),
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Text, false) => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn log_format_parses_both_names_and_names_a_bad_value() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" TEXT ".parse::<LogFormat>(), Ok(LogFormat::Text));
        let err = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(
            err.contains("MURSST_LOG_FORMAT") && err.contains("yaml"),
            "{err}"
        );
    }
}
