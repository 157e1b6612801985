//! The glue every mursst Lambda shares: logs (JSON unless `MURSST_LOG_FORMAT=text`), one
//! [`Context`] per container built from the environment, and the runtime loop handing
//! each event to the library's step.
//! A handler is `serve(Step::…)`; all logic lives in `mursst::pipeline`.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use mursst::logging::{self, LogFormat};
use mursst::pipeline::{Context, PipelineError, Step, run_step};
use serde_json::Value;

/// Run `step` for every invocation until the runtime stops the container.
pub async fn serve(step: Step) -> Result<(), lambda_runtime::Error> {
    logging::init(LogFormat::from_env(LogFormat::Json)?, "info", true);
    // Clients and configuration once per container, not once per event.
    let ctx = Box::pin(Context::from_env()).await?;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        tracing::info!(step = step.name(), request = %event.context.request_id, "invoked");
        Box::pin(run_step(ctx, step, event.payload))
            .await
            .map_err(diagnostic)
    }))
    .await
}

/// The error as Step Functions sees it: `Retry` and `Catch` match on the kind's name.
fn diagnostic(e: PipelineError) -> Diagnostic {
    let kind = e.kind();
    tracing::error!(kind = kind.name(), error = %e, "step failed");
    Diagnostic {
        error_type: kind.name().to_string(),
        error_message: e.to_string(),
    }
}
