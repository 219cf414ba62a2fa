//! The canvas's sharing settings (root `sharing`): visibility, grants, public link and
//! embedding; their edits and their tolerant reader, with the conventions of
//! [`crate::blocks`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use yrs::types::ToJson;
use yrs::{Any, Array, ArrayRef, In, Map, MapPrelim, MapRef, ReadTxn, TransactionMut, WriteTxn};

use crate::role::Role;
use crate::schema::SHARING;
use crate::values::{any_string, child_map, out_string, string_at, strings_prelim};

/// Who may see a canvas beyond its project members and grantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only project members and grantees.
    #[default]
    Private,
    /// Every member of the organization may view.
    Team,
    /// Anyone with the public link may view.
    Public,
}

impl Visibility {
    /// The stored name: "private", "team" or "public".
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Team => "team",
            Visibility::Public => "public",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a visibility that is not one of `private`, `team`, `public`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown visibility {0:?}: expected private, team or public")]
pub struct UnknownVisibility(pub String);

impl FromStr for Visibility {
    type Err = UnknownVisibility;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "private" => Ok(Visibility::Private),
            "team" => Ok(Visibility::Team),
            "public" => Ok(Visibility::Public),
            other => Err(UnknownVisibility(other.to_owned())),
        }
    }
}

/// One entry of `sharing.permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The user the role is granted to.
    pub user_id: String,
    /// The granted role (never [`Role::Owner`]: see [`sharing`]).
    pub role: Role,
    /// ISO-8601 time of the grant, if recorded.
    pub granted_at: Option<String>,
    /// Who granted it, if recorded.
    pub granted_by: Option<String>,
}

/// The canvas's sharing settings as read by [`sharing`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sharing {
    /// Visibility (default private).
    pub visibility: Visibility,
    /// Grants, sorted by user id.
    pub grants: Vec<Grant>,
    /// The public link's id, if any: a non-secret handle that changes whenever the link is
    /// replaced. The token itself is kept by the server, never in the document.
    pub public_link: Option<String>,
    /// Whether embedding is allowed.
    pub embed_enabled: bool,
    /// Domains allowed to embed.
    pub allowed_domains: Vec<String>,
}

fn sharing_root(txn: &mut TransactionMut) -> MapRef {
    txn.get_or_insert_map(SHARING)
}

/// Sets `sharing.visibility`.
pub fn set_visibility(txn: &mut TransactionMut, visibility: Visibility) {
    let sharing = sharing_root(txn);
    sharing.try_update(txn, "visibility", visibility.as_str());
}

/// Grants `role` on this canvas to `user_id`: `permissions[user_id] = {role, granted_at,
/// granted_by}` (one map written at once, so a concurrent grant to the same user wins whole).
pub fn grant(
    txn: &mut TransactionMut,
    user_id: &str,
    role: Role,
    granted_by: &str,
    granted_at: &str,
) {
    let sharing = sharing_root(txn);
    let permissions: MapRef = sharing.get_or_init(txn, "permissions");
    permissions.insert(
        txn,
        user_id,
        MapPrelim::from([
            ("role", In::from(role.as_str())),
            ("granted_at", In::from(granted_at)),
            ("granted_by", In::from(granted_by)),
        ]),
    );
}

/// Removes `user_id`'s grant; `false` if there was none.
pub fn revoke(txn: &mut TransactionMut, user_id: &str) -> bool {
    let Some(permissions) = txn
        .get_map(SHARING)
        .and_then(|s| child_map(&*txn, &s, "permissions"))
    else {
        return false;
    };
    permissions.remove(txn, user_id).is_some()
}

/// Sets or clears `sharing.public_link`.
pub fn set_public_link(txn: &mut TransactionMut, link: Option<&str>) {
    let sharing = sharing_root(txn);
    sharing.try_update(txn, "public_link", Any::from(link.map(Any::from)));
}

/// Sets `sharing.embed_settings`: `enabled`, and `allowed_domains` replaced as a whole.
pub fn set_embed(txn: &mut TransactionMut, enabled: bool, allowed_domains: &[String]) {
    let sharing = sharing_root(txn);
    let embed: MapRef = sharing.get_or_init(txn, "embed_settings");
    embed.try_update(txn, "enabled", enabled);
    let current: Option<Vec<String>> = embed
        .get(&*txn, "allowed_domains")
        .and_then(|o| o.cast::<ArrayRef>().ok())
        .map(|a| a.iter(&*txn).filter_map(|o| out_string(&o)).collect());
    if current.as_deref() != Some(allowed_domains) {
        embed.insert(txn, "allowed_domains", strings_prelim(allowed_domains));
    }
}

/// Reads `sharing`, tolerating anything clients may have written: an unknown visibility reads
/// as private; a grant whose value is not a map (a `Y.Map` or a plain object) or whose role is
/// not a known role is skipped; an `owner` grant reads as [`Role::Admin`] (ownership comes
/// from the project, never from a grant); missing embed settings read as disabled.
pub fn sharing<T: ReadTxn>(txn: &T) -> Sharing {
    let Some(root) = txn.get_map(SHARING) else {
        return Sharing::default();
    };
    let visibility = string_at(txn, &root, "visibility")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();

    let mut grants = Vec::new();
    if let Some(permissions) = child_map(txn, &root, "permissions") {
        for (user_id, value) in permissions.iter(txn) {
            let Any::Map(entry) = value.to_json(txn) else {
                continue;
            };
            let Some(role) = any_string(entry.get("role")).and_then(|r| r.parse::<Role>().ok())
            else {
                continue;
            };
            grants.push(Grant {
                user_id: user_id.to_owned(),
                role: role.min(Role::Admin),
                granted_at: any_string(entry.get("granted_at")),
                granted_by: any_string(entry.get("granted_by")),
            });
        }
    }
    grants.sort_by(|a, b| a.user_id.cmp(&b.user_id));

    let public_link = string_at(txn, &root, "public_link").filter(|s| !s.is_empty());

    let (embed_enabled, allowed_domains) =
        match root.get(txn, "embed_settings").map(|o| o.to_json(txn)) {
            Some(Any::Map(embed)) => {
                let enabled = matches!(embed.get("enabled"), Some(Any::Bool(true)));
                let domains = match embed.get("allowed_domains") {
                    Some(Any::Array(items)) => {
                        items.iter().filter_map(|a| any_string(Some(a))).collect()
                    }
                    _ => Vec::new(),
                };
                (enabled, domains)
            }
            _ => (false, Vec::new()),
        };

    Sharing {
        visibility,
        grants,
        public_link,
        embed_enabled,
        allowed_domains,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::tests::canvas;
    use crate::new_doc;
    use serde_json::json;
    use yrs::Transact;

    #[test]
    fn sharing_round_trip() {
        let d = canvas();
        let mut txn = d.transact_mut();
        set_visibility(&mut txn, Visibility::Team);
        grant(&mut txn, "u2", Role::Editor, "u1", "2024-01-10T09:00:00Z");
        grant(&mut txn, "u0", Role::Viewer, "u1", "2024-01-11T09:00:00Z");
        set_public_link(&mut txn, Some("tok"));
        set_embed(&mut txn, true, &["example.com".to_string()]);
        let s = sharing(&txn);
        assert_eq!(s.visibility, Visibility::Team);
        assert_eq!(
            s.grants
                .iter()
                .map(|g| (g.user_id.as_str(), g.role))
                .collect::<Vec<_>>(),
            vec![("u0", Role::Viewer), ("u2", Role::Editor)]
        );
        assert_eq!(s.grants[1].granted_by.as_deref(), Some("u1"));
        assert_eq!(s.public_link.as_deref(), Some("tok"));
        assert!(s.embed_enabled);
        assert_eq!(s.allowed_domains, vec!["example.com".to_string()]);
        assert!(revoke(&mut txn, "u2"));
        assert!(!revoke(&mut txn, "u2"));
        set_public_link(&mut txn, None);
        let s = sharing(&txn);
        assert_eq!(s.grants.len(), 1);
        assert_eq!(s.public_link, None);
    }

    #[test]
    fn sharing_reader_tolerates_garbage() {
        let d = new_doc();
        let mut txn = d.transact_mut();
        assert_eq!(sharing(&txn), Sharing::default());
        let root = txn.get_or_insert_map(SHARING);
        root.insert(&mut txn, "visibility", "everyone");
        root.insert(&mut txn, "embed_settings", 7);
        let perms = root.insert(&mut txn, "permissions", MapPrelim::default());
        perms.insert(
            &mut txn,
            "bad-role",
            MapPrelim::from([("role", In::from("god"))]),
        );
        perms.insert(&mut txn, "not-a-map", "editor");
        perms.insert(
            &mut txn,
            "owner",
            MapPrelim::from([("role", In::from("owner"))]),
        );
        // A JS client writing a plain object instead of a Y.Map.
        let plain = Any::from(std::collections::HashMap::from([(
            "role".to_string(),
            Any::from("admin"),
        )]));
        perms.insert(&mut txn, "plain", plain);
        let s = sharing(&txn);
        assert_eq!(s.visibility, Visibility::Private);
        assert!(!s.embed_enabled);
        assert_eq!(
            s.grants
                .iter()
                .map(|g| (g.user_id.as_str(), g.role))
                .collect::<Vec<_>>(),
            vec![("owner", Role::Admin), ("plain", Role::Admin)]
        );
        assert_eq!(s.grants[0].granted_at, None);
    }

    #[test]
    fn visibility_parses() {
        for v in [Visibility::Private, Visibility::Team, Visibility::Public] {
            assert_eq!(v.as_str().parse::<Visibility>(), Ok(v));
            assert_eq!(serde_json::to_value(v).ok(), Some(json!(v.as_str())));
        }
        assert!("open".parse::<Visibility>().is_err());
    }
}
