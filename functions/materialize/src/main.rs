//! The materialize Lambda. Writes one native day's chunks onto the store's grid for the commit to set.

use mursst::pipeline::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mursst_lambda::serve(Step::Materialize).await
}
