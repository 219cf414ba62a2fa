//! [`TemplateStore`]: round trip, visibility by organization, built-ins kept, usage counts.

use super::{assert_conflict, unique};
use crate::{Template, TemplateStore};
use chrono::SubsecRound;
use serde_json::json;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __template_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx templates template_store [
            every_field_round_trips,
            a_taken_id_is_a_conflict,
            members_see_public_and_their_organizations_templates,
            count_use_counts_each_use,
            ensure_template_keeps_an_existing_template,
        ] }
    };
}

/// Every case at once.
pub async fn all(templates: &dyn TemplateStore) {
    crate::__template_cases!(__join_cases!(templates));
}

fn template(id: &str, is_public: bool, organization_id: Option<Uuid>) -> Template {
    Template {
        id: id.to_owned(),
        name: format!("Template {id}"),
        description: Some("for tests".into()),
        category: Some("tests".into()),
        thumbnail_url: None,
        is_public,
        usage_count: 0,
        blocks: json!([{"id": "b1", "type": "narrative", "position": {"x": 0, "y": 0, "w": 6, "h": 4},
                        "content": {"text": "Hello", "data_bindings": []}}]),
        required_fields: vec!["date".into(), "region".into()],
        created_by: "someone".into(),
        organization_id,
        created_at: chrono::Utc::now().trunc_subsecs(3),
    }
}

/// Stored: a private template of `org`, a public and a private one of another organization.
struct Stored {
    org: Uuid,
    private: Template,
    public: Template,
    foreign: Template,
}

async fn stored(templates: &dyn TemplateStore) -> Stored {
    let org = Uuid::new_v4();
    let other_org = Uuid::new_v4();
    let private = template(&unique("private-"), false, Some(org));
    let public = template(&unique("public-"), true, Some(other_org));
    let foreign = template(&unique("foreign-"), false, Some(other_org));
    for t in [&private, &public, &foreign] {
        templates.create_template(t).await.expect("create_template");
    }
    Stored {
        org,
        private,
        public,
        foreign,
    }
}

/// Every field of a stored template reads back as stored; an unknown id is `None`.
pub async fn every_field_round_trips(templates: &dyn TemplateStore) {
    let Stored { private, .. } = stored(templates).await;
    assert_eq!(
        templates
            .template(&private.id)
            .await
            .expect("template")
            .as_ref(),
        Some(&private),
        "every field round-trips"
    );
    assert!(
        templates
            .template("no-such-template")
            .await
            .expect("template")
            .is_none()
    );
}

/// A template with a taken id is `Conflict("id")`.
pub async fn a_taken_id_is_a_conflict(templates: &dyn TemplateStore) {
    let Stored { private, .. } = stored(templates).await;
    assert_conflict(templates.create_template(&private).await, "id", "template");
}

/// A member of an organization sees the public templates and their organization's; anyone
/// sees the public ones only.
pub async fn members_see_public_and_their_organizations_templates(templates: &dyn TemplateStore) {
    let Stored {
        org,
        private,
        public,
        foreign,
    } = stored(templates).await;
    let visible = |list: Vec<Template>| list.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let mine = visible(templates.templates(Some(org)).await.expect("templates"));
    assert!(mine.contains(&private.id) && mine.contains(&public.id));
    assert!(
        !mine.contains(&foreign.id),
        "another organization's private template"
    );
    let anonymous = visible(templates.templates(None).await.expect("templates"));
    assert!(anonymous.contains(&public.id) && !anonymous.contains(&private.id));
}

/// Each `count_use` adds one to `usage_count`.
pub async fn count_use_counts_each_use(templates: &dyn TemplateStore) {
    let Stored { private, .. } = stored(templates).await;
    templates.count_use(&private.id).await.expect("count_use");
    templates.count_use(&private.id).await.expect("count_use");
    let used = templates
        .template(&private.id)
        .await
        .expect("template")
        .expect("exists");
    assert_eq!(used.usage_count, 2);
}

/// A built-in template is stored once; later starts keep it and its count.
pub async fn ensure_template_keeps_an_existing_template(templates: &dyn TemplateStore) {
    let builtin = Template {
        created_by: "system".into(),
        organization_id: None,
        ..template(&unique("builtin-"), true, None)
    };
    templates
        .ensure_template(&builtin)
        .await
        .expect("ensure_template");
    templates.count_use(&builtin.id).await.expect("count_use");
    templates
        .ensure_template(&builtin)
        .await
        .expect("ensure_template again");
    let kept = templates
        .template(&builtin.id)
        .await
        .expect("template")
        .expect("exists");
    assert_eq!(
        kept.usage_count, 1,
        "ensure_template keeps an existing template"
    );
    assert_eq!(kept.created_by, "system");
}
