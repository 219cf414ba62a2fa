//! Helpers shared by the SQL backends (SQLite and PostgreSQL).

use crate::{StorageError, StorageResult};
use canvas_engine::Role;

/// An organization slug from a name: lowercase ASCII letters and digits, runs of anything
/// else as one `-`, never empty.
pub(crate) fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        slug.push_str("org");
    }
    slug
}

/// Maps a foreign-key violation to `NotFound(what)`; any other error stays a database error.
pub(crate) fn missing_reference(err: sqlx::Error, what: &str) -> StorageError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StorageError::NotFound(what.to_owned())
        }
        _ => StorageError::Database(err),
    }
}

/// A stored role (`Role::as_str` form); anything else is corrupt data.
pub(crate) fn parse_role(col: &str, value: &str) -> StorageResult<Role> {
    value
        .parse()
        .map_err(|e| StorageError::Corrupt(format!("{col}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Alice"), "alice");
        assert_eq!(slugify("  Bob  the Builder!! "), "bob-the-builder");
        assert_eq!(slugify("émile_zola"), "mile-zola");
        assert_eq!(slugify("日本"), "org");
    }

    #[test]
    fn roles_parse_or_are_corrupt() {
        assert_eq!(parse_role("role", "editor").ok(), Some(Role::Editor));
        assert!(matches!(
            parse_role("role", "root"),
            Err(StorageError::Corrupt(_))
        ));
    }
}
