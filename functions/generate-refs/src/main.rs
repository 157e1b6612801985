//! The generate-refs Lambda. Indexes one granule's HDF5 metadata into a references artifact.

use mursst::pipeline::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mursst_lambda::serve(Step::GenerateRefs).await
}
