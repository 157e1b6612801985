//! The validate-against-source step: read the temporary branch back and check it
//! before `main` may move. Metadata rules come from the Python updater; data equality
//! compares values read through the branch by zarrs (resolving the virtual references)
//! with values libhdf5 reads from the source granule itself.

#[cfg(feature = "validate")]
mod branch;
#[cfg(feature = "validate")]
mod compare;
#[cfg(feature = "validate")]
mod rules;
#[cfg(feature = "validate")]
mod sparse;
#[cfg(feature = "validate")]
mod vfd;

#[cfg(feature = "validate")]
pub use branch::{Branch, check, validate};

use serde::{Deserialize, Serialize};

use crate::error::BoxError;
use crate::store::StoreError;

/// How much of the new data to compare with the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ValidateMode {
    /// No validation (the branch is still written and merged).
    Off,
    /// Metadata rules only.
    Metadata,
    /// Rules plus a seeded random sample of chunks per day and variable.
    #[default]
    Sample,
    /// Rules plus every chunk of every new day.
    Full,
}

/// Chunks compared per day and variable in `sample` mode (the last, partial chunk is
/// always one of them).
pub const SAMPLE_CHUNKS: usize = 4;

/// The checks a branch must pass, in the order they run; serialized by their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    #[serde(rename = "new time steps equal new granules")]
    NewStepsEqualGranules,
    #[serde(rename = "uniform time step")]
    UniformTimeStep,
    #[serde(rename = "publisher_name present")]
    PublisherNamePresent,
    #[serde(rename = "dropped attributes absent")]
    DroppedAttributesAbsent,
    #[serde(rename = "start attributes unchanged")]
    StartAttributesUnchanged,
    #[serde(rename = "stop attributes changed")]
    StopAttributesChanged,
    #[serde(rename = "coordinates unchanged")]
    CoordinatesUnchanged,
    #[serde(rename = "granule referenced")]
    GranuleReferenced,
    #[serde(rename = "data equal to source")]
    DataEqualToSource,
}

impl Rule {
    /// The rule's name as reports and messages give it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::NewStepsEqualGranules => "new time steps equal new granules",
            Rule::UniformTimeStep => "uniform time step",
            Rule::PublisherNamePresent => "publisher_name present",
            Rule::DroppedAttributesAbsent => "dropped attributes absent",
            Rule::StartAttributesUnchanged => "start attributes unchanged",
            Rule::StopAttributesChanged => "stop attributes changed",
            Rule::CoordinatesUnchanged => "coordinates unchanged",
            Rule::GranuleReferenced => "granule referenced",
            Rule::DataEqualToSource => "data equal to source",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed check, naming the rule and what was found.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("validation failed: {rule}: {detail}")]
    Failed { rule: Rule, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source could not be read to compare with; `retryable` when trying again may
    /// help (a throttle, a dropped connection), decided where the read failed.
    #[error("reading the source to compare with: {}: {}", place(.granule, .variable), crate::error::error_chain(.source.as_ref()))]
    Fetch {
        granule: String,
        variable: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// libhdf5 cannot open or decode the source: the same bytes fail the same way again.
    #[error("libhdf5 cannot read the source: {}: {}", place(.granule, .variable), crate::error::error_chain(.source.as_ref()))]
    Oracle {
        granule: String,
        variable: String,
        #[source]
        source: BoxError,
    },
}

impl ValidationError {
    /// A rule that failed fails the branch; the rest as their cause says.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            ValidationError::Failed { .. } => ErrorKind::ValidationFailed,
            ValidationError::Store(e) => e.kind(),
            ValidationError::Fetch { retryable, .. } => ErrorKind::retryable_if(*retryable),
            ValidationError::Oracle { .. } => ErrorKind::Failed,
        }
    }
}

/// `granule: variable`, or the granule alone when no variable is involved.
fn place(granule: &str, variable: &str) -> String {
    if variable.is_empty() {
        granule.to_string()
    } else {
        format!("{granule}: {variable}")
    }
}

#[cfg(feature = "validate")]
fn failed(rule: Rule, detail: impl Into<String>) -> ValidationError {
    ValidationError::Failed {
        rule,
        detail: detail.into(),
    }
}

/// What validation checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub mode: ValidateMode,
    pub rules: Vec<Rule>,
    pub references_checked: u64,
    pub chunks_compared: u64,
    pub values_compared: u64,
    /// Bytes read from the sources to compare data.
    #[serde(default)]
    pub source_bytes_read: u64,
    /// Reads libhdf5 needed beyond the metadata and the planned chunks, fetched when
    /// it asked (normally none).
    #[serde(default)]
    pub source_fetches_on_demand: u64,
}
