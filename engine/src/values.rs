//! Tolerant reading of the plain values in a canvas document (numbers written by JavaScript
//! as floats, strings, nested maps), and writing a list of strings, for the edit modules.

use yrs::{Any, ArrayPrelim, Map, MapRef, Out, ReadTxn};

/// An integral number, whether stored as an integer or as an integral float (JS numbers).
pub(crate) fn out_i64(out: &Out) -> Option<i64> {
    match out {
        Out::Any(Any::Number(n)) => n.as_i64(),
        _ => None,
    }
}

pub(crate) fn out_string(out: &Out) -> Option<String> {
    match out {
        Out::Any(Any::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

pub(crate) fn any_string(any: Option<&Any>) -> Option<String> {
    match any {
        Some(Any::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

pub(crate) fn child_map<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> Option<MapRef> {
    map.get(txn, key)?.cast::<MapRef>().ok()
}

pub(crate) fn int_at<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> Option<i64> {
    map.get(txn, key).as_ref().and_then(out_i64)
}

pub(crate) fn string_at<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> Option<String> {
    map.get(txn, key).as_ref().and_then(out_string)
}

pub(crate) fn strings_prelim(items: &[String]) -> ArrayPrelim {
    items.iter().map(|s| Any::from(s.as_str())).collect()
}
