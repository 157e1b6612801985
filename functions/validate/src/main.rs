//! The validate Lambda. Compares the run's branch with the source granules through libhdf5.

use mursst::pipeline::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mursst_lambda::serve(Step::Validate).await
}
