//! The field names of a `#[derive(Deserialize)]` struct, read from serde's own description.

use serde::de::{self, Deserialize, Deserializer, Visitor};

struct FieldProbe<'f> {
    fields: &'f mut Option<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = Some(fields);
        Err(de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The names of the fields of struct `T` as serde sees them (after renames); empty when `T` is
/// not a struct.
pub fn struct_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldProbe {
        fields: &mut fields,
    });
    fields.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        alpha: u32,
        #[serde(rename = "beta-gamma")]
        beta: String,
    }

    #[test]
    fn lists_fields_after_renames() {
        assert_eq!(super::struct_fields::<Sample>(), &["alpha", "beta-gamma"]);
        assert!(super::struct_fields::<u32>().is_empty());
    }
}
