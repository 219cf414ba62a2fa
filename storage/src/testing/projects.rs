//! [`ProjectStore`]: creation, roles (owner included), member upsert and removal, the
//! projects of a user newest first, updates, references to unknown records.

use super::{TICK, assert_not_found, new_user, unique};
use crate::{NewMember, NewProject, Project, ProjectStore, ProjectUpdate, User, UserStore};
use canvas_engine::Role;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __project_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx projects project_store [
            create_project_returns_and_stores_the_project,
            create_project_with_an_unknown_owner_is_not_found,
            the_owner_is_owner_and_others_have_no_role,
            put_member_adds_then_changes_a_role,
            put_member_refuses_the_owner_role,
            owner_id_wins_over_a_member_row,
            put_member_on_an_unknown_project_or_user_is_not_found,
            remove_member_removes_only_that_member,
            projects_of_a_user_are_owned_and_member_of_newest_first,
            update_project_renames_and_clears_the_description,
            archived_projects_are_listed_apart_until_restored,
            update_of_an_unknown_project_is_none,
        ] }
    };
}

/// Every case at once.
pub async fn all(users: &dyn UserStore, projects: &dyn ProjectStore) {
    crate::__project_cases!(__join_cases!(users, projects));
}

/// Three fresh users and a project `p1` of the first, described "first".
struct Fixture {
    owner: User,
    alice: User,
    bob: User,
    p1: Project,
}

async fn fixture(users: &dyn UserStore, projects: &dyn ProjectStore) -> Fixture {
    let owner = new_user(users).await;
    let alice = new_user(users).await;
    let bob = new_user(users).await;
    let p1 = projects
        .create_project(NewProject {
            name: unique("p1-"),
            description: Some("first".into()),
            organization_id: owner.organization_id,
            owner_id: owner.id,
        })
        .await
        .expect("create_project");
    Fixture {
        owner,
        alice,
        bob,
        p1,
    }
}

async fn role(projects: &dyn ProjectStore, project: Uuid, user: Uuid) -> Option<Role> {
    projects
        .member_role(project, user)
        .await
        .expect("member_role")
}

async fn put(projects: &dyn ProjectStore, project_id: Uuid, user_id: Uuid, role: Role) {
    projects
        .put_member(NewMember {
            project_id,
            user_id,
            role,
            invited_by: None,
        })
        .await
        .expect("put_member");
}

/// The ids of a user's projects, active or archived, in the store's order.
async fn listed(projects: &dyn ProjectStore, user: Uuid, archived: bool) -> Vec<Uuid> {
    projects
        .projects_for_user(user, archived)
        .await
        .expect("projects_for_user")
        .into_iter()
        .map(|p| p.id)
        .collect()
}

/// `p2`, a project of alice's with the owner as a viewer, made after `p1` (a [`TICK`] later,
/// so its `created_at` is later).
async fn second_project(projects: &dyn ProjectStore, f: &Fixture) -> Project {
    tokio::time::sleep(TICK).await;
    let p2 = projects
        .create_project(NewProject {
            name: unique("p2-"),
            description: None,
            organization_id: f.alice.organization_id,
            owner_id: f.alice.id,
        })
        .await
        .expect("create_project");
    projects
        .put_member(NewMember {
            project_id: p2.id,
            user_id: f.owner.id,
            role: Role::Viewer,
            invited_by: Some(f.alice.id),
        })
        .await
        .expect("put_member");
    p2
}

/// `create_project` returns the project as stored; `project` reads it back; an unknown id
/// is `None`.
pub async fn create_project_returns_and_stores_the_project(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let Fixture { owner, p1, .. } = fixture(users, projects).await;
    assert_eq!(p1.owner_id, owner.id);
    assert_eq!(p1.organization_id, owner.organization_id);
    assert_eq!(p1.description.as_deref(), Some("first"));
    assert!(!p1.is_archived);
    assert_eq!(
        projects.project(p1.id).await.expect("project").as_ref(),
        Some(&p1)
    );
    assert_eq!(
        projects.project(Uuid::new_v4()).await.expect("project"),
        None
    );
}

/// A project of an unknown owner is `NotFound`.
pub async fn create_project_with_an_unknown_owner_is_not_found(
    _users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    assert_not_found(
        projects
            .create_project(NewProject {
                name: unique("p-"),
                description: None,
                organization_id: None,
                owner_id: Uuid::new_v4(),
            })
            .await,
        "create_project with an unknown owner",
    );
}

/// `owner_id` is `Owner`; a user with no member row, or on an unknown project, has no role.
pub async fn the_owner_is_owner_and_others_have_no_role(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let Fixture {
        owner, alice, p1, ..
    } = fixture(users, projects).await;
    assert_eq!(
        role(projects, p1.id, owner.id).await,
        Some(Role::Owner),
        "owner_id is Owner"
    );
    assert_eq!(
        role(projects, p1.id, alice.id).await,
        None,
        "not a member yet"
    );
    assert_eq!(
        role(projects, Uuid::new_v4(), owner.id).await,
        None,
        "unknown project"
    );
}

/// `put_member` adds a member, then changes their role (upsert); `members` lists one row
/// per member with the current role, without the owner.
pub async fn put_member_adds_then_changes_a_role(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let Fixture {
        owner,
        alice,
        bob,
        p1,
    } = fixture(users, projects).await;
    let m = projects
        .put_member(NewMember {
            project_id: p1.id,
            user_id: alice.id,
            role: Role::Viewer,
            invited_by: Some(owner.id),
        })
        .await
        .expect("put_member");
    assert_eq!(
        (m.project_id, m.user_id, m.role),
        (p1.id, alice.id, Role::Viewer)
    );
    assert_eq!(m.invited_by, Some(owner.id));
    assert_eq!(role(projects, p1.id, alice.id).await, Some(Role::Viewer));
    let m = projects
        .put_member(NewMember {
            project_id: p1.id,
            user_id: alice.id,
            role: Role::Editor,
            invited_by: Some(owner.id),
        })
        .await
        .expect("put_member as a role change");
    assert_eq!(m.role, Role::Editor);
    assert_eq!(
        role(projects, p1.id, alice.id).await,
        Some(Role::Editor),
        "role changed"
    );
    projects
        .put_member(NewMember {
            project_id: p1.id,
            user_id: bob.id,
            role: Role::Admin,
            invited_by: Some(alice.id),
        })
        .await
        .expect("put_member");
    assert_eq!(role(projects, p1.id, bob.id).await, Some(Role::Admin));
    let members = projects.members(p1.id).await.expect("members");
    let listed: BTreeSet<_> = members.iter().map(|m| (m.user_id, m.role)).collect();
    assert_eq!(
        listed,
        BTreeSet::from([(alice.id, Role::Editor), (bob.id, Role::Admin)]),
        "one row per member with the current role; the owner is not listed"
    );
}

/// Owner is not a member role: `put_member` with it is refused and changes nothing.
pub async fn put_member_refuses_the_owner_role(users: &dyn UserStore, projects: &dyn ProjectStore) {
    let Fixture { alice, p1, .. } = fixture(users, projects).await;
    put(projects, p1.id, alice.id, Role::Editor).await;
    assert!(
        projects
            .put_member(NewMember {
                project_id: p1.id,
                user_id: alice.id,
                role: Role::Owner,
                invited_by: None,
            })
            .await
            .is_err(),
        "put_member with Role::Owner must be refused"
    );
    assert_eq!(role(projects, p1.id, alice.id).await, Some(Role::Editor));
}

/// A member row of the owner does not demote them, and can be removed.
pub async fn owner_id_wins_over_a_member_row(users: &dyn UserStore, projects: &dyn ProjectStore) {
    let Fixture { owner, p1, .. } = fixture(users, projects).await;
    put(projects, p1.id, owner.id, Role::Viewer).await;
    assert_eq!(
        role(projects, p1.id, owner.id).await,
        Some(Role::Owner),
        "owner_id wins over a row"
    );
    assert!(
        projects
            .remove_member(p1.id, owner.id)
            .await
            .expect("remove_member")
    );
}

/// A member of an unknown project, or an unknown user as a member, is `NotFound`.
pub async fn put_member_on_an_unknown_project_or_user_is_not_found(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let Fixture { alice, p1, .. } = fixture(users, projects).await;
    assert_not_found(
        projects
            .put_member(NewMember {
                project_id: Uuid::new_v4(),
                user_id: alice.id,
                role: Role::Viewer,
                invited_by: None,
            })
            .await,
        "put_member on an unknown project",
    );
    assert_not_found(
        projects
            .put_member(NewMember {
                project_id: p1.id,
                user_id: Uuid::new_v4(),
                role: Role::Viewer,
                invited_by: None,
            })
            .await,
        "put_member of an unknown user",
    );
}

/// `remove_member` removes that member only (`true`); removing a non-member is `false`.
pub async fn remove_member_removes_only_that_member(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let Fixture { alice, bob, p1, .. } = fixture(users, projects).await;
    put(projects, p1.id, alice.id, Role::Editor).await;
    put(projects, p1.id, bob.id, Role::Admin).await;
    assert!(
        projects
            .remove_member(p1.id, alice.id)
            .await
            .expect("remove_member")
    );
    assert!(
        !projects
            .remove_member(p1.id, alice.id)
            .await
            .expect("remove_member"),
        "removing a non-member is false"
    );
    assert_eq!(role(projects, p1.id, alice.id).await, None, "removed");
    let members = projects.members(p1.id).await.expect("members");
    assert_eq!(
        members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        vec![bob.id]
    );
}

/// The projects of a user are those they own or are a member of, newest first.
pub async fn projects_of_a_user_are_owned_and_member_of_newest_first(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let f = fixture(users, projects).await;
    put(projects, f.p1.id, f.alice.id, Role::Editor).await;
    put(projects, f.p1.id, f.bob.id, Role::Admin).await;
    assert!(
        projects
            .remove_member(f.p1.id, f.alice.id)
            .await
            .expect("remove_member")
    );
    let p2 = second_project(projects, &f).await;
    let of = |user: Uuid| listed(projects, user, false);
    assert_eq!(
        of(f.owner.id).await,
        vec![p2.id, f.p1.id],
        "owned and member-of, newest first"
    );
    assert_eq!(
        of(f.alice.id).await,
        vec![p2.id],
        "removed from p1, owns p2"
    );
    assert_eq!(of(f.bob.id).await, vec![f.p1.id]);
    assert_eq!(of(Uuid::new_v4()).await, Vec::<Uuid>::new());
}

/// `update_project` renames; `Some(None)` clears the description; `updated_at` moves on,
/// `created_at` stays.
pub async fn update_project_renames_and_clears_the_description(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let Fixture { p1, .. } = fixture(users, projects).await;
    let before = projects.project(p1.id).await.expect("project").expect("p1");
    let renamed = projects
        .update_project(
            p1.id,
            ProjectUpdate {
                name: Some("Renamed".into()),
                description: Some(None),
                is_archived: None,
            },
        )
        .await
        .expect("update_project")
        .expect("p1 exists");
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(
        renamed.description, None,
        "Some(None) clears the description"
    );
    assert!(!renamed.is_archived);
    assert!(renamed.updated_at >= before.updated_at);
    assert_eq!(renamed.created_at, before.created_at);
}

/// An archived project keeps its other fields, leaves the active list for the archived one,
/// and comes back in its place when restored.
pub async fn archived_projects_are_listed_apart_until_restored(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    let f = fixture(users, projects).await;
    let p1 = f.p1.id;
    let p2 = second_project(projects, &f).await;
    let renamed = ProjectUpdate {
        name: Some("Renamed".into()),
        ..Default::default()
    };
    projects
        .update_project(p1, renamed)
        .await
        .expect("update_project")
        .expect("p1 exists");
    let archived = projects
        .update_project(
            p1,
            ProjectUpdate {
                is_archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("archive")
        .expect("p1 exists");
    assert!(archived.is_archived);
    assert_eq!(archived.name, "Renamed", "a missing name keeps it");
    assert_eq!(
        projects.project(p1).await.expect("project").as_ref(),
        Some(&archived),
        "reads back as written"
    );
    assert_eq!(
        listed(projects, f.owner.id, false).await,
        vec![p2.id],
        "archived projects leave the list"
    );
    assert_eq!(
        listed(projects, f.owner.id, true).await,
        vec![p1],
        "and are listed as archived"
    );
    let restored = projects
        .update_project(
            p1,
            ProjectUpdate {
                is_archived: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("restore")
        .expect("p1 exists");
    assert!(!restored.is_archived);
    assert_eq!(listed(projects, f.owner.id, false).await, vec![p2.id, p1]);
}

/// `update_project` of an unknown project is `None`.
pub async fn update_of_an_unknown_project_is_none(
    _users: &dyn UserStore,
    projects: &dyn ProjectStore,
) {
    assert!(
        projects
            .update_project(Uuid::new_v4(), ProjectUpdate::default())
            .await
            .expect("update of an unknown project")
            .is_none()
    );
}
