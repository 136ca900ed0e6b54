//! The values of a few fields of a JSON record, read straight from its
//! bytes: one pass, fields nobody asked for skipped without being built,
//! strings without escapes borrowed from the input. A sink that maps a
//! handful of paths to columns would otherwise build a whole
//! `serde_json::Value` tree (a map and a string per field) for each record
//! and throw most of it away.
//!
//! The whole document is still parsed, so a record that is not JSON is
//! refused exactly as `serde_json::from_slice` refuses it. Semantics follow
//! `Value::get` along the path: a missing field, or a path through
//! something that is not an object, gives [`Field::Null`]; of duplicate
//! keys the last one wins.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// One field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    /// Missing or `null`.
    Null,
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX`.
    BigInt(u64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string, borrowed from the record when it has no escapes.
    Str(Cow<'a, str>),
    /// An object or an array.
    Tree(Value),
}

impl Field<'_> {
    /// The field as JSON text.
    pub fn to_json(&self) -> String {
        match self {
            Field::Null => "null".into(),
            Field::Bool(b) => b.to_string(),
            Field::Int(i) => i.to_string(),
            Field::BigInt(u) => u.to_string(),
            Field::Float(f) => Value::from(*f).to_string(),
            Field::Str(s) => Value::from(s.as_ref()).to_string(),
            Field::Tree(v) => v.to_string(),
        }
    }

    fn of(value: &Value) -> Field<'static> {
        match value {
            Value::Null => Field::Null,
            Value::Bool(b) => Field::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Field::Int(i),
                (None, Some(u), _) => Field::BigInt(u),
                (None, None, f) => Field::Float(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => Field::Str(Cow::Owned(s.clone())),
            tree => Field::Tree(tree.clone()),
        }
    }
}

/// The paths to read, as a tree of keys; each node knows which of the
/// wanted paths end at it.
#[derive(Debug, Default, Clone)]
pub struct Paths {
    ends: Vec<usize>,
    children: Vec<(String, Paths)>,
    /// How many paths were given (kept at the root).
    len: usize,
}

impl Paths {
    /// `paths[i]` is the key sequence of the `i`-th value; an empty one is
    /// the whole record.
    pub fn new<'p>(paths: impl IntoIterator<Item = &'p [String]>) -> Paths {
        let mut root = Paths::default();
        let mut len = 0;
        for (i, path) in paths.into_iter().enumerate() {
            len = i + 1;
            let mut node = &mut root;
            for key in path {
                let at = match node.children.iter().position(|(k, _)| k == key) {
                    Some(at) => at,
                    None => {
                        node.children.push((key.clone(), Paths::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at].1;
            }
            node.ends.push(i);
        }
        root.len = len;
        root
    }

    /// The wanted values of `json`, in the order the paths were given.
    pub fn read<'a>(&self, json: &'a [u8]) -> Result<Vec<Field<'a>>, serde_json::Error> {
        let mut out = vec![Field::Null; self.len];
        let mut de = serde_json::Deserializer::from_slice(json);
        Walk {
            node: self,
            out: &mut out,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(out)
    }

    /// Fills the values below this node from an already built value.
    fn fill<'a>(&self, value: &Value, out: &mut [Field<'a>]) {
        for (key, child) in &self.children {
            match value.get(key.as_str()) {
                Some(v) => {
                    let field = Field::of(v);
                    for &i in &child.ends {
                        out[i] = field.clone();
                    }
                    child.fill(v, out);
                }
                None => child.clear(out),
            }
        }
    }

    /// Sets every value at or below this node to null.
    fn clear(&self, out: &mut [Field<'_>]) {
        for &i in &self.ends {
            out[i] = Field::Null;
        }
        for (_, child) in &self.children {
            child.clear(out);
        }
    }
}

/// Reads one value at `node`: whole, if a path ends here, else only the
/// keys below it.
struct Walk<'n, 'o, 'a> {
    node: &'n Paths,
    out: &'o mut [Field<'a>],
}

impl<'de, 'n, 'o> DeserializeSeed<'de> for Walk<'n, 'o, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        if self.node.ends.is_empty() {
            de.deserialize_any(Keys {
                node: self.node,
                out: self.out,
            })
        } else {
            let field = de.deserialize_any(Whole)?;
            match &field {
                Field::Tree(v) => self.node.fill(v, self.out),
                _ => self.node.clear(self.out),
            }
            for &i in &self.node.ends {
                self.out[i] = field.clone();
            }
            Ok(())
        }
    }
}

/// An object of which only some keys matter; anything else holds none of
/// them.
struct Keys<'n, 'o, 'a> {
    node: &'n Paths,
    out: &'o mut [Field<'a>],
}

impl<'de, 'n, 'o> Visitor<'de> for Keys<'n, 'o, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let Keys { node, out } = self;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match node.children.iter().find(|(k, _)| *k == key) {
                Some((_, child)) => {
                    // A duplicate key replaces what the first one gave.
                    child.clear(out);
                    map.next_value_seed(Walk {
                        node: child,
                        out: &mut *out,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A value taken whole.
struct Whole;

impl<'de> Visitor<'de> for Whole {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Field<'de>, E> {
        Ok(Field::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Field<'de>, E> {
        Ok(Field::Int(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Field<'de>, E> {
        Ok(i64::try_from(u).map_or(Field::BigInt(u), Field::Int))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Field<'de>, E> {
        Ok(Field::Float(f))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Field<'de>, M::Error> {
        let value = serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Field::Tree(value))
    }
    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Field<'de>, S::Error> {
        let value = serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Field::Tree(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> (Vec<Vec<String>>, Paths) {
        let split: Vec<Vec<String>> = list
            .iter()
            .map(|p| {
                if p.is_empty() {
                    Vec::new()
                } else {
                    p.split('.').map(str::to_owned).collect()
                }
            })
            .collect();
        let tree = Paths::new(split.iter().map(Vec::as_slice));
        (split, tree)
    }

    /// What `Value::get` along each path gives, as a [`Field`].
    fn by_value(split: &[Vec<String>], json: &str) -> Vec<Field<'static>> {
        let value: Value = serde_json::from_str(json).unwrap();
        split
            .iter()
            .map(|path| {
                path.iter()
                    .try_fold(&value, |v, k| v.get(k.as_str()))
                    .map_or(Field::Null, Field::of)
            })
            .collect()
    }

    #[test]
    fn fields_read_from_the_bytes_equal_the_values_a_parsed_tree_gives() {
        let (split, tree) = paths(&[
            "a", "b.c", "b", "b.d.e", "s", "esc", "n", "f", "big", "neg", "missing", "a.x", "arr",
            "",
        ]);
        let docs = [
            r#"{"a":1,"b":{"c":"x","d":{"e":[1,2]}},"s":"plain","esc":"tab\there","n":null,"f":2.5,"big":18446744073709551615,"neg":-3,"arr":[{"a":1}],"zz":{"deep":[true]}}"#,
            r#"{"b":7,"a":{"x":true},"a":{"y":1}}"#,
            r#"{"b":{"c":1},"b":{"d":2}}"#,
            r#"[1,2,3]"#,
            r#""just a string""#,
            r#"{}"#,
        ];
        for doc in docs {
            let read = tree.read(doc.as_bytes()).unwrap();
            assert_eq!(read, by_value(&split, doc), "{doc}");
        }
        // Without a path to the whole record, strings without escapes are
        // borrowed.
        let (_, tree) = paths(&["s", "esc", "b.c"]);
        let read = tree.read(docs[0].as_bytes()).unwrap();
        assert!(matches!(read[0], Field::Str(Cow::Borrowed("plain"))));
        assert!(matches!(read[1], Field::Str(Cow::Owned(_))));
        assert!(matches!(read[2], Field::Str(Cow::Borrowed("x"))));
    }

    #[test]
    fn a_record_that_is_not_json_is_refused_as_serde_json_refuses_it() {
        let (_, tree) = paths(&["a"]);
        for bad in [
            &b"{\"a\":1"[..],
            b"{\"a\":1} x",
            b"not json",
            b"{\"z\":[1,}",
            b"",
        ] {
            let ours = tree.read(bad).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<Value>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn fields_print_as_the_json_they_came_from() {
        let (_, tree) = paths(&["a", "b", "c", "d"]);
        let read = tree
            .read(br#"{"a":"q\"uote","b":1e3,"c":[1,{"x":null}],"d":false}"#)
            .unwrap();
        let text: Vec<String> = read.iter().map(Field::to_json).collect();
        assert_eq!(
            text,
            [r#""q\"uote""#, "1000.0", r#"[1,{"x":null}]"#, "false"]
        );
    }
}
