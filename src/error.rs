//! What every layer's errors share, with no dependency on any of them: how a failure is
//! handled ([`ErrorKind`], which each layer's error decides for itself where it is
//! made), the boxed cause and its one-line rendering.

/// Any error an SDK or library hands us, kept whole as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Flatten an error and its causes into one line: SDK errors hide the useful part
/// (connection refused, a DNS failure) deep down, and icechunk appends a span trace
/// after `context:` that is noise in a message.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    fn own(e: &dyn std::error::Error) -> String {
        let text = e.to_string();
        match text.split_once("\n\ncontext:") {
            Some((message, _)) => message.trim_end().to_string(),
            None => text,
        }
    }
    let mut msg = own(err);
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = own(e);
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        cur = e.source();
    }
    msg
}

/// How a failure should be handled; the Step Functions error name is [`Self::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ErrorKind {
    /// I/O, throttling, 5xx, timeouts: retry with backoff.
    Retryable,
    /// A granule does not fit the store.
    SchemaRejected,
    /// The branch failed validation; it is kept, main is unchanged.
    ValidationFailed,
    /// Main moved while the run worked.
    Conflict,
    /// The event or the configuration is wrong.
    InvalidInput,
    /// Anything else final: a corrupt granule, inconsistent store metadata.
    Failed,
    /// A bug or a dying process (a task panicked or was cancelled): final, and worth a
    /// report, since neither the input nor the store is at fault.
    Internal,
}

impl ErrorKind {
    /// Every kind, for checks that each is handled (the state machines' `Retry`).
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Retryable,
        ErrorKind::SchemaRejected,
        ErrorKind::ValidationFailed,
        ErrorKind::Conflict,
        ErrorKind::InvalidInput,
        ErrorKind::Failed,
        ErrorKind::Internal,
    ];

    /// [`Self::Retryable`] when trying again may work, else [`Self::Failed`].
    pub fn retryable_if(retryable: bool) -> Self {
        if retryable {
            ErrorKind::Retryable
        } else {
            ErrorKind::Failed
        }
    }

    /// The error type Step Functions sees (and `Retry` / `Catch` match on).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Retryable => "Retryable",
            ErrorKind::SchemaRejected => "SchemaRejected",
            ErrorKind::ValidationFailed => "ValidationFailed",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::Failed => "Failed",
            ErrorKind::Internal => "Internal",
        }
    }
}
