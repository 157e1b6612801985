//! What the HDF5 metadata reader yields: the object tree with the storage facts
//! a virtual Zarr store needs, and nothing that requires reading chunk data.

/// Byte order of a numeric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ByteOrder {
    Little,
    Big,
}

/// An HDF5 datatype, reduced to the classes netCDF-4 files use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Datatype {
    /// Integer of `size` bytes (class 0).
    Integer {
        size: u8,
        signed: bool,
        order: ByteOrder,
    },
    /// IEEE float of `size` bytes (class 1).
    Float { size: u8, order: ByteOrder },
    /// Fixed-length string of `size` bytes (class 3); padding bytes are stripped on decode.
    FixedString { size: u32 },
    /// Variable-length string (class 9, type 1), stored in the global heap.
    VarString,
    /// Object reference (class 7, type 0): the address of an object header.
    ObjectReference,
    /// Variable-length sequence (class 9, type 0) of the inner type.
    Sequence(Box<Datatype>),
    /// Anything else, described for error messages (e.g. "compound", "enum").
    Unsupported(String),
}

impl Datatype {
    /// Size in bytes of one stored element (sequences and var-strings: their 16-byte heap ID).
    pub fn element_size(&self) -> Option<u32> {
        match self {
            Datatype::Integer { size, .. } | Datatype::Float { size, .. } => Some(u32::from(*size)),
            Datatype::FixedString { size } => Some(*size),
            Datatype::ObjectReference => Some(8),
            Datatype::VarString | Datatype::Sequence(_) => None,
            Datatype::Unsupported(_) => None,
        }
    }
}

/// A decoded attribute value. Numeric arrays keep their HDF5 type so callers can
/// reproduce it exactly (an int16 `valid_min` stays an int16).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum AttributeValue {
    /// Signed integers of the given byte size.
    Int { size: u8, values: Vec<i64> },
    /// Unsigned integers of the given byte size.
    UInt { size: u8, values: Vec<u64> },
    /// Floats of the given byte size (4 or 8), widened exactly to f64.
    Float { size: u8, values: Vec<f64> },
    /// Strings (fixed-length with padding stripped, or variable-length).
    Strings(Vec<String>),
    /// Variable-length sequences of object references (e.g. `DIMENSION_LIST`), as addresses.
    ReferenceLists(Vec<Vec<u64>>),
    /// Object references, as addresses (e.g. `REFERENCE_LIST` is compound and is `Unsupported`).
    References(Vec<u64>),
    /// An attribute the reader cannot decode; the text says which type it has.
    Unsupported(String),
}

/// One attribute, in creation order when the file tracks it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Attribute {
    pub name: String,
    /// Dimensions of the attribute's dataspace; empty for a scalar.
    pub shape: Vec<u64>,
    pub value: AttributeValue,
}

/// A filter in a dataset's pipeline, in application order (as written).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Filter {
    /// HDF5 filter id: 1 deflate, 2 shuffle, 3 fletcher32, 4 szip, 5 nbit, 6 scaleoffset, ...
    pub id: u16,
    /// Name stored in the message, if any.
    pub name: Option<String>,
    /// Whether the filter may be skipped for a chunk (flags bit 0).
    pub optional: bool,
    /// Client data values (e.g. the deflate level, the shuffle element size).
    pub client_data: Vec<u32>,
}

/// Where one stored chunk lives in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChunkLocation {
    /// Index of the chunk in the chunk grid (element offset / chunk shape), one per dimension.
    pub index: Vec<u64>,
    /// Absolute byte address in the file.
    pub address: u64,
    /// Stored (filtered) size in bytes.
    pub size: u64,
    /// Bit i set means filter i was skipped for this chunk.
    pub filter_mask: u32,
}

/// How a dataset's data is stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// One block at `address` (None when never written: undefined address).
    Contiguous { address: Option<u64>, size: u64 },
    /// Data stored inside the object header.
    Compact { data: Vec<u8> },
    /// Chunked; `chunk_shape` excludes the element-size dimension HDF5 appends.
    /// `chunks` lists every allocated chunk, ordered by `index`.
    Chunked {
        chunk_shape: Vec<u64>,
        chunks: Vec<ChunkLocation>,
        /// Which index structure the file used, e.g. "btree-v1", "fixed-array".
        index_kind: &'static str,
    },
}

/// A dataset and everything needed to reference its chunks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dataset {
    pub name: String,
    /// Full path from the root, e.g. `/analysed_sst`.
    pub path: String,
    /// File address of the object header; object references point here.
    pub address: u64,
    pub datatype: Datatype,
    /// Current dimensions (empty for a scalar).
    pub shape: Vec<u64>,
    /// Maximum dimensions (`u64::MAX` for unlimited), if the dataspace records them.
    pub max_shape: Option<Vec<u64>>,
    pub layout: Layout,
    pub filters: Vec<Filter>,
    /// Raw fill value bytes from the fill value message, if one is defined.
    pub fill_value: Option<Vec<u8>>,
    pub attributes: Vec<Attribute>,
}

/// A group: its attributes and children, in link order (creation order when tracked,
/// else by name).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    pub name: String,
    pub path: String,
    pub address: u64,
    pub attributes: Vec<Attribute>,
    pub groups: Vec<Group>,
    pub datasets: Vec<Dataset>,
}

/// The whole metadata tree of one file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileMetadata {
    pub superblock_version: u8,
    pub root: Group,
}
