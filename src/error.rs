//! What every layer's errors share, with no dependency on any of them: the boxed cause
//! and its one-line rendering.

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
