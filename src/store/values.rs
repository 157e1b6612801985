//! Typed element buffers for the real (non-virtual) arrays the store writes and the
//! values validation compares: one element trait, one dispatch from [`DataType`].

use zarrs::array::{Array, ArraySubset, CodecOptions};
use zarrs::storage::AsyncReadableWritableStorageTraits;
use zarrs_icechunk::AsyncIcechunkStore;

use super::StoreError;
use crate::refs::DataType;

/// A numeric element of a store array; every [`DataType`] has one.
pub trait Element:
    zarrs::array::ElementOwned + Copy + Send + Sync + std::fmt::Debug + 'static
{
    const SIZE: usize;
    fn from_le(bytes: &[u8]) -> Self;
    fn put_le(self, out: &mut Vec<u8>);
    /// The value as an integer (floats truncated): time values of any stored type.
    fn as_i64(self) -> i64;
    /// Equal bit for bit, except that any NaN equals any NaN.
    fn same(&self, other: &Self) -> bool;
}

macro_rules! element {
    ($($t:ty: $same:expr),* $(,)?) => {$(
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(&bytes[..Self::SIZE]);
                <$t>::from_le_bytes(b)
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            fn as_i64(self) -> i64 {
                self as i64
            }
            fn same(&self, other: &Self) -> bool {
                let same: fn(&$t, &$t) -> bool = $same;
                same(self, other)
            }
        }
    )*};
}

element!(
    i8: |a, b| a == b,
    i16: |a, b| a == b,
    i32: |a, b| a == b,
    i64: |a, b| a == b,
    u8: |a, b| a == b,
    u16: |a, b| a == b,
    u32: |a, b| a == b,
    u64: |a, b| a == b,
    f32: |a, b| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
    f64: |a, b| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
);

/// Evaluate `$body` with the type alias `$t` naming the element type of `$dtype`.
macro_rules! with_element_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::refs::DataType::Int8 => {
                type $t = i8;
                $body
            }
            $crate::refs::DataType::Int16 => {
                type $t = i16;
                $body
            }
            $crate::refs::DataType::Int32 => {
                type $t = i32;
                $body
            }
            $crate::refs::DataType::Int64 => {
                type $t = i64;
                $body
            }
            $crate::refs::DataType::UInt8 => {
                type $t = u8;
                $body
            }
            $crate::refs::DataType::UInt16 => {
                type $t = u16;
                $body
            }
            $crate::refs::DataType::UInt32 => {
                type $t = u32;
                $body
            }
            $crate::refs::DataType::UInt64 => {
                type $t = u64;
                $body
            }
            $crate::refs::DataType::Float32 => {
                type $t = f32;
                $body
            }
            $crate::refs::DataType::Float64 => {
                type $t = f64;
                $body
            }
        }
    };
}
#[allow(unused_imports)] // used by validation, which a build may leave out
pub(crate) use with_element_type;

/// Values of one [`DataType`], held as little-endian bytes (the form coordinates are
/// compared and stored in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values {
    pub dtype: DataType,
    pub le_bytes: Vec<u8>,
}

impl Values {
    /// Little-endian bytes of `dtype` elements; a trailing partial element is an error.
    pub fn from_le_bytes(dtype: DataType, le_bytes: Vec<u8>) -> Option<Self> {
        le_bytes
            .len()
            .is_multiple_of(dtype.size())
            .then_some(Self { dtype, le_bytes })
    }

    pub fn from_elements<T: Element>(dtype: DataType, elements: &[T]) -> Self {
        let mut le_bytes = Vec::with_capacity(elements.len() * T::SIZE);
        for e in elements {
            e.put_le(&mut le_bytes);
        }
        Self { dtype, le_bytes }
    }

    /// The elements as `T`, which must be `dtype`'s element type.
    fn elements<T: Element>(&self) -> Vec<T> {
        self.le_bytes
            .chunks_exact(T::SIZE)
            .map(T::from_le)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.le_bytes.len() / self.dtype.size()
    }

    pub fn is_empty(&self) -> bool {
        self.le_bytes.is_empty()
    }

    /// The values as integers (floats truncated), e.g. time values of any stored type.
    pub fn as_i64(&self) -> Vec<i64> {
        with_element_type!(self.dtype, T => self
            .elements::<T>()
            .into_iter()
            .map(Element::as_i64)
            .collect())
    }

    /// Integer time values for an integer `dtype`; `None` if one does not fit.
    pub fn times(dtype: DataType, values: &[i64]) -> Option<Self> {
        match dtype {
            DataType::Int32 => values
                .iter()
                .map(|v| i32::try_from(*v).ok())
                .collect::<Option<Vec<_>>>()
                .map(|v| Self::from_elements(dtype, &v)),
            DataType::Int64 => Some(Self::from_elements(dtype, values)),
            _ => None,
        }
    }

    /// Read a subset of a Zarr array through zarrs.
    pub async fn read(
        array: &Array<AsyncIcechunkStore>,
        dtype: DataType,
        subset: &ArraySubset,
    ) -> Result<Self, StoreError> {
        with_element_type!(dtype, T => {
            let v: Vec<T> = array
                .async_retrieve_array_subset(subset)
                .await
                .map_err(|e| StoreError::zarr(format!("reading {}", array.path()), e))?;
            Ok(Self::from_elements(dtype, &v))
        })
    }

    /// Write the values into a subset of a Zarr array through zarrs.
    pub async fn write(
        &self,
        array: &Array<AsyncIcechunkStore>,
        subset: &ArraySubset,
    ) -> Result<(), StoreError> {
        self.write_with(array, subset, &CodecOptions::default())
            .await
    }

    /// [`Self::write`], storing chunks that hold only the fill value too: every chunk
    /// of a materialized day exists, as every chunk of a virtual day does.
    pub async fn write_every_chunk<S>(
        &self,
        array: &Array<S>,
        subset: &ArraySubset,
    ) -> Result<(), StoreError>
    where
        S: ?Sized + AsyncReadableWritableStorageTraits + 'static,
    {
        let options = CodecOptions::default().with_store_empty_chunks(true);
        self.write_with(array, subset, &options).await
    }

    async fn write_with<S>(
        &self,
        array: &Array<S>,
        subset: &ArraySubset,
        options: &CodecOptions,
    ) -> Result<(), StoreError>
    where
        S: ?Sized + AsyncReadableWritableStorageTraits + 'static,
    {
        with_element_type!(self.dtype, T => array
            .async_store_array_subset_opt(subset, self.elements::<T>().as_slice(), options)
            .await
            .map_err(|e| StoreError::zarr(format!("writing {}", array.path()), e)))
    }
}

/// The one-dimensional subset `start..end`.
pub(crate) fn range_1d(start: u64, end: u64) -> ArraySubset {
    ArraySubset::new_with_ranges(std::slice::from_ref(&(start..end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_for_every_type() {
        let v = Values::from_elements(DataType::Int16, &[-2i16, 7]);
        assert_eq!(v.le_bytes, [0xfe, 0xff, 7, 0]);
        assert_eq!(v.as_i64(), [-2, 7]);
        assert_eq!(v.len(), 2);
        let f = Values::from_le_bytes(DataType::Float64, 2.5f64.to_le_bytes().to_vec()).unwrap();
        assert_eq!(f.as_i64(), [2]);
        assert!(Values::from_le_bytes(DataType::Int32, vec![1, 2, 3]).is_none());
        assert!(Values::times(DataType::Int32, &[i64::MAX]).is_none());
        assert_eq!(Values::times(DataType::Int64, &[5]).unwrap().as_i64(), [5]);
    }

    #[test]
    fn nan_equals_nan_but_bits_matter_otherwise() {
        assert!(f32::NAN.same(&f32::NAN));
        assert!(!1.0f32.same(&2.0));
        assert!(3i16.same(&3));
        assert!(!0.0f64.same(&1.0));
        assert!(!0.0f32.same(&-0.0));
    }
}
