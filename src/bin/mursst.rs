//! `mursst`: the pipeline's steps, run locally.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use mursst::source::{self, Counted, RangeRead, S3Settings};

#[derive(Parser)]
#[command(
    version,
    about = "Keeps a virtual icechunk store of MUR SST up to date"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a granule's virtual chunk references as a Kerchunk (v1) reference file.
    Refs {
        /// A path, file:// or s3:// URL.
        granule: String,
        /// Print requests made, bytes read and wall time on stderr.
        #[arg(long)]
        stats: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Refs { granule, stats } => refs(&granule, stats).await,
    }
}

async fn refs(granule: &str, stats: bool) -> anyhow::Result<()> {
    let start = Instant::now();
    let reader = source::open(granule, &S3Settings::from_env()).await?;
    let counted = Arc::new(Counted::new(reader));
    let refs = mursst::refs::index_granule(counted.as_ref() as &dyn RangeRead, &Default::default())
        .await
        .with_context(|| format!("indexing {granule}"))?;
    let doc = mursst::kerchunk::to_kerchunk(&refs);
    serde_json::to_writer(std::io::stdout().lock(), &doc)?;
    println!();
    if stats {
        eprintln!(
            "requests: {}  bytes read: {}  wall time: {:.3} s",
            counted.stats.requests(),
            counted.stats.bytes(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
