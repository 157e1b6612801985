//! The commit Lambda. Writes a run's days to its temporary branch, or moves main to the validated tip.

use mursst::pipeline::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mursst_lambda::serve(Step::Commit).await
}
