//! The discover Lambda. Asks what is new after the store's last day, respecting the settling lag.

use mursst::pipeline::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mursst_lambda::serve(Step::Discover).await
}
