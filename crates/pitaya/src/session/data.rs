//! Session data: a few keys per session, kept as a sorted vector.
//!
//! Every frontend session holds at least `ipversion` (spec 10.1), and a `serde_json`
//! map stores even one key in a B-tree node of about 600 bytes. A vector sized to its
//! keys costs 56 bytes a key. Lookups are binary searches, and the order is the map's,
//! so a copy handed out as a [`Map`] reads the same.

use serde_json::{Map, Value};

/// Key-value pairs sorted by key, no key twice.
#[derive(Debug, Default)]
pub(super) struct Data {
    pairs: Vec<(String, Value)>,
}

impl Data {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Stores `value` under `key`; returns the value it replaced.
    pub(super) fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.pairs[i].1, value)),
            Err(i) => {
                // Grown one pair at a time: sessions hold few keys, and a doubling
                // vector would keep room for keys that never come in each of them.
                self.pairs.reserve_exact(1);
                self.pairs.insert(i, (key, value));
                None
            }
        }
    }

    /// Returns the value under `key`.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.pairs[i].1)
    }

    /// Removes `key`; returns its value.
    pub(super) fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.find(key).ok()?;
        Some(self.pairs.remove(i).1)
    }

    /// Returns the pairs as a JSON map.
    pub(super) fn to_map(&self) -> Map<String, Value> {
        self.pairs.iter().cloned().collect()
    }
}

impl From<Map<String, Value>> for Data {
    fn from(map: Map<String, Value>) -> Self {
        // A `Map` iterates in key order with no key twice: already what `pairs` needs.
        Data {
            pairs: map.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_stay_sorted_and_unique_as_in_a_map() {
        let mut data = Data::default();
        assert_eq!(data.insert("b".into(), json!(2)), None);
        assert_eq!(data.insert("a".into(), json!(1)), None);
        assert_eq!(data.insert("c".into(), json!(3)), None);
        assert_eq!(data.insert("b".into(), json!(20)), Some(json!(2)));

        let map = data.to_map();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(map["b"], json!(20));
        assert_eq!(data.get("c"), Some(&json!(3)));
        assert_eq!(data.get("d"), None);

        assert_eq!(data.remove("a"), Some(json!(1)));
        assert_eq!(data.remove("a"), None);
        assert_eq!(data.to_map().len(), 2);
    }

    #[test]
    fn a_map_comes_back_unchanged() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"z":[1],"ipversion":"ipv4","m":{"k":null}}"#).unwrap();
        let mut data = Data::from(map.clone());
        assert_eq!(data.to_map(), map);
        assert_eq!(data.get("ipversion"), Some(&json!("ipv4")));
        data.insert("n".into(), json!(true));
        assert_eq!(data.get("n"), Some(&json!(true)));
        assert_eq!(data.get("z"), Some(&json!([1])));
    }

    #[test]
    fn storage_grows_by_the_keys_stored() {
        let mut data = Data::default();
        data.insert("ipversion".into(), json!("ipv4"));
        assert_eq!(data.pairs.capacity(), 1);
    }
}
