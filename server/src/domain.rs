//! The server's pure rules: who may do what with a canvas, and who is asking. Nothing here
//! touches storage, the network or the server's state, so every rule is unit-tested alone.
//!
//! A user's role on a canvas is the highest of
//! - their project role (`projects.owner_id` => owner, else `project_members.role`),
//! - their grant in the canvas's `sharing.permissions`,
//! - viewer, when `sharing.visibility` is "team" and they belong to the project's organization,
//! - viewer, when `sharing.visibility` is "public" and they present the canvas's current public
//!   link token (`?link=` on REST and WebSocket; no account needed),
//!
//! capped at viewer while the project is archived (archived canvases are read-only), and none
//! at all for a connection embedded in a page of another site (a foreign `Origin`) unless the
//! canvas's `embed_settings` allow that site.
//!
//! The project part comes from storage ([`crate::access`] looks it up into a
//! [`ProjectAccess`]); the sharing part lives in the canvas document, so rooms combine the two
//! with [`effective_role`]. Rooms recompute it whenever sharing, membership or archiving
//! changes, so revocations reach open connections.

use canvas_engine::Role;
use canvas_engine::sharing::{Sharing, Visibility};
use canvas_storage::User;
use uuid::Uuid;

/// What storage and the request say about one caller and one canvas's project.
#[derive(Debug, Clone, Default)]
pub struct ProjectAccess {
    /// The user (a random id for an anonymous public-link viewer).
    pub user_id: Uuid,
    /// Their role in the canvas's project, if any.
    pub project_role: Option<Role>,
    /// Whether they belong to the project's organization (for "team" visibility).
    pub same_organization: bool,
    /// The project is archived: nobody may change its canvases.
    pub archived: bool,
    /// The id of the public link whose token the caller presented, if it matched.
    pub link: Option<String>,
    /// The host of the foreign page the connection is embedded in (see
    /// [`embedding_host`]); `None` for same-site pages, the operator's own apps and
    /// non-browser clients.
    pub embed_host: Option<String>,
}

/// Who made a change, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The user (`None` for anonymous public-link viewers).
    pub user_id: Option<Uuid>,
    /// Their organization.
    pub organization_id: Option<Uuid>,
    /// Where the request came from.
    pub ip: Option<std::net::IpAddr>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// Where a request came from, for the audit log and the per-address rate limits.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address (see [`client_ip`]), when the server was started with connect
    /// info.
    pub ip: Option<std::net::IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The caller as the audit log records them.
    pub fn actor(&self, user: &User) -> Actor {
        Actor {
            user_id: Some(user.id),
            organization_id: user.organization_id,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
        }
    }

    /// An anonymous caller (a public-link viewer) as the audit log records them.
    pub fn anonymous(&self) -> Actor {
        Actor {
            ip: self.ip,
            user_agent: self.user_agent.clone(),
            ..Actor::default()
        }
    }
}

/// The client's address: the TCP peer, or, behind `trusted_proxies` reverse proxies that
/// each append the address they saw to `X-Forwarded-For`, the `trusted_proxies`-th address
/// from the right of that header (every value of it, in order). Addresses further left were
/// written by the client itself and are never believed. A request with fewer addresses than
/// that (it did not come through the proxies) or an unreadable one counts as the peer.
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    forwarded_for: &[&str],
    trusted_proxies: usize,
) -> Option<std::net::IpAddr> {
    if trusted_proxies == 0 {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    let Some(index) = hops.len().checked_sub(trusted_proxies) else {
        return peer;
    };
    let hop = hops[index];
    hop.parse::<std::net::IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .ok()
        .or(peer)
}

/// Whether the link a caller came in by (its id, set by [`crate::access::link_access`] only
/// when the caller presented the link's token) is the canvas's current public link: the id
/// the document holds in `sharing.public_link`. Ids are not secrets.
fn link_matches(current: Option<&str>, matched: Option<&str>) -> bool {
    matches!((current, matched), (Some(current), Some(matched)) if !current.is_empty() && current == matched)
}

/// The host of the page a browser connection is embedded in, if it is a foreign one: the
/// `Origin` header's host when it differs from the request's own `Host` and is not one of
/// the operator's `app_origins`. `None` for same-site pages and clients that send no
/// `Origin` (servers, native apps, Node).
pub fn embedding_host(
    origin: Option<&str>,
    host: Option<&str>,
    app_origins: &[String],
) -> Option<String> {
    let origin = origin?.trim();
    if app_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return None;
    }
    let uri: http::Uri = match origin.parse() {
        Ok(uri) => uri,
        // "null" (sandboxed frames, file pages) or garbage: foreign, and matches no domain.
        Err(_) => return Some(origin.to_ascii_lowercase()),
    };
    let Some(authority) = uri.authority() else {
        return Some(origin.to_ascii_lowercase());
    };
    if host.is_some_and(|h| h.eq_ignore_ascii_case(authority.as_str())) {
        return None;
    }
    Some(authority.host().to_ascii_lowercase())
}

/// Whether `embed_settings` let a page on `host` embed the canvas: embedding enabled, and
/// `allowed_domains` empty (any site) or naming the host or a parent domain of it.
pub fn embed_allowed(sharing: &Sharing, host: &str) -> bool {
    sharing.embed_enabled
        && (sharing.allowed_domains.is_empty()
            || sharing.allowed_domains.iter().any(|domain| {
                let domain = domain.trim().trim_start_matches("*.").to_ascii_lowercase();
                !domain.is_empty()
                    && (host == domain
                        || host
                            .strip_suffix(domain.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }))
}

/// The effective role: the highest of project role, canvas grant, team visibility and public
/// link, capped at viewer in an archived project; none for an embedding the canvas does not
/// allow.
pub fn effective_role(access: &ProjectAccess, sharing: &Sharing) -> Option<Role> {
    if let Some(host) = &access.embed_host
        && !embed_allowed(sharing, host)
    {
        return None;
    }
    let user = access.user_id.to_string();
    let grant = sharing
        .grants
        .iter()
        .filter(|g| g.user_id == user)
        .map(|g| g.role)
        .max();
    let team = (sharing.visibility == Visibility::Team && access.same_organization)
        .then_some(Role::Viewer);
    let public = (sharing.visibility == Visibility::Public
        && link_matches(sharing.public_link.as_deref(), access.link.as_deref()))
    .then_some(Role::Viewer);
    let role = [access.project_role, grant, team, public]
        .into_iter()
        .flatten()
        .max();
    if access.archived {
        role.map(|r| r.min(Role::Viewer))
    } else {
        role
    }
}

/// A role name that cannot be given to someone (not viewer, editor or admin).
#[derive(Debug, thiserror::Error)]
#[error("role must be viewer, editor or admin")]
pub struct NotGrantable;

/// A role that can be given to someone: viewer, editor or admin (ownership is not given).
pub fn grantable_role(role: &str) -> Result<Role, NotGrantable> {
    role.parse()
        .ok()
        .filter(|r| *r != Role::Owner)
        .ok_or(NotGrantable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canvas_engine::sharing::Grant;

    fn sharing(visibility: Visibility, grants: Vec<Grant>) -> Sharing {
        Sharing {
            visibility,
            grants,
            public_link: None,
            embed_enabled: false,
            allowed_domains: vec![],
        }
    }

    #[test]
    fn highest_source_wins() {
        let id = Uuid::new_v4();
        let stranger = ProjectAccess {
            user_id: id,
            same_organization: true,
            ..ProjectAccess::default()
        };
        assert_eq!(
            effective_role(&stranger, &sharing(Visibility::Private, vec![])),
            None
        );
        assert_eq!(
            effective_role(&stranger, &sharing(Visibility::Team, vec![])),
            Some(Role::Viewer)
        );
        let grant = Grant {
            user_id: id.to_string(),
            role: Role::Editor,
            granted_at: None,
            granted_by: None,
        };
        assert_eq!(
            effective_role(&stranger, &sharing(Visibility::Team, vec![grant])),
            Some(Role::Editor)
        );
        let member = ProjectAccess {
            user_id: id,
            project_role: Some(Role::Admin),
            ..ProjectAccess::default()
        };
        assert_eq!(
            effective_role(&member, &sharing(Visibility::Team, vec![])),
            Some(Role::Admin)
        );
        let archived = ProjectAccess {
            archived: true,
            ..member.clone()
        };
        assert_eq!(
            effective_role(&archived, &sharing(Visibility::Team, vec![])),
            Some(Role::Viewer),
            "archived projects are read-only, even for admins"
        );
    }

    #[test]
    fn the_client_address_is_the_peer_unless_proxies_are_trusted() {
        let peer: Option<std::net::IpAddr> = "10.0.0.5".parse().ok();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().ok();
        assert_eq!(client_ip(peer, &["203.0.113.1"], 0), peer, "not trusted");
        assert_eq!(
            client_ip(peer, &["6.6.6.6, 203.0.113.1"], 1),
            ip("203.0.113.1"),
            "the address the proxy appended, not what the client wrote"
        );
        assert_eq!(
            client_ip(peer, &["6.6.6.6", "203.0.113.1, 10.0.0.9"], 2),
            ip("203.0.113.1"),
            "two proxies, the header split over two lines"
        );
        assert_eq!(client_ip(peer, &[], 1), peer, "not through the proxy");
        assert_eq!(client_ip(peer, &["garbage"], 1), peer);
        assert_eq!(
            client_ip(peer, &["[2001:db8::1]:443"], 1),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn public_link_gives_viewer_only_while_public_and_current() {
        let mut public = sharing(Visibility::Public, vec![]);
        public.public_link = Some("link-123".into());
        let anonymous = |link: &str| ProjectAccess {
            user_id: Uuid::new_v4(),
            link: Some(link.into()),
            ..ProjectAccess::default()
        };
        assert_eq!(
            effective_role(&anonymous("link-123"), &public),
            Some(Role::Viewer)
        );
        assert_eq!(effective_role(&anonymous("link-12"), &public), None);
        assert_eq!(effective_role(&anonymous(""), &public), None);
        let mut private = public.clone();
        private.visibility = Visibility::Private;
        assert_eq!(effective_role(&anonymous("link-123"), &private), None);
        let mut revoked = public.clone();
        revoked.public_link = None;
        assert_eq!(effective_role(&anonymous("link-123"), &revoked), None);
        assert_eq!(effective_role(&anonymous(""), &revoked), None);
    }

    #[test]
    fn embedding_is_checked_against_the_origin() {
        let apps = vec!["https://app.example.org".to_owned()];
        assert_eq!(embedding_host(None, Some("canvas.local:3000"), &apps), None);
        assert_eq!(
            embedding_host(
                Some("http://canvas.local:3000"),
                Some("canvas.local:3000"),
                &apps
            ),
            None,
            "same origin"
        );
        assert_eq!(
            embedding_host(
                Some("https://app.example.org"),
                Some("api.example.org"),
                &apps
            ),
            None,
            "the operator's own app"
        );
        assert_eq!(
            embedding_host(
                Some("https://Blog.Partner.com:8443"),
                Some("api.example.org"),
                &apps
            ),
            Some("blog.partner.com".to_owned())
        );
        assert_eq!(
            embedding_host(Some("null"), Some("api.example.org"), &apps),
            Some("null".to_owned())
        );

        let mut s = sharing(Visibility::Private, vec![]);
        assert!(
            !embed_allowed(&s, "blog.partner.com"),
            "disabled by default"
        );
        s.embed_enabled = true;
        assert!(
            embed_allowed(&s, "anything.example"),
            "enabled with no list: any site"
        );
        s.allowed_domains = vec!["partner.com".into()];
        assert!(embed_allowed(&s, "partner.com"));
        assert!(
            embed_allowed(&s, "blog.partner.com"),
            "subdomains of an allowed domain"
        );
        assert!(!embed_allowed(&s, "evilpartner.com"));
        assert!(!embed_allowed(&s, "null"));

        let member = ProjectAccess {
            user_id: Uuid::new_v4(),
            project_role: Some(Role::Editor),
            embed_host: Some("evil.example".into()),
            ..ProjectAccess::default()
        };
        assert_eq!(
            effective_role(&member, &s),
            None,
            "a foreign page not on the list"
        );
        let allowed = ProjectAccess {
            embed_host: Some("blog.partner.com".into()),
            ..member
        };
        assert_eq!(effective_role(&allowed, &s), Some(Role::Editor));
    }
}
