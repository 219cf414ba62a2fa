//! The PostgreSQL backend ([`PgStore`]) against the generic suites, plus what only it has:
//! the seed's schema, connection failures, races decided by constraints, time zones.
//!
//! Needs a PostgreSQL server: `DATABASE_URL_TEST` is an admin URL (one that may create and
//! drop databases), e.g. `postgres://postgres@127.0.0.1:5432/postgres`; `./scripts/test.sh`
//! starts a server and sets it. Without it every test here fails, saying so. Each test
//! creates its own database `canvas_test_<random>` and drops it at the end, passed or failed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a broken expectation panics with its message"
)]

use canvas_engine::Role;
use canvas_storage::postgres_store::PgStore;
use canvas_storage::testing::{self, Service};
use canvas_storage::{
    AuditFilter, AuditStore, NewAuditEntry, NewMember, NewProject, NewUser, ProjectStore,
    StorageError, UserStore,
};
use chrono::{TimeDelta, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn admin_url() -> String {
    testing::service_url(Service::Postgres)
}

/// `url` with its database replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A fresh database on the test server, and an admin connection to drop it with.
struct TestDb {
    admin: PgPool,
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> TestDb {
        let admin_url = admin_url();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to the PostgreSQL server of {} (is it running? is the URL \
                     an admin URL?): {e}",
                    Service::Postgres.env_var()
                )
            });
        let name = format!("canvas_test_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} (needs an admin URL): {e}"));
        TestDb {
            url: with_database(&admin_url, &name),
            admin,
            name,
        }
    }

    /// Best effort: a failure to drop leaves a `canvas_test_*` database behind, nothing more.
    async fn drop(self) {
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await;
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
        self.admin.close().await;
    }
}

/// Runs `test` on a store connected to a fresh database, then drops the database, whether
/// the test passed or not, and re-raises the test's panic if it had one.
async fn with_store<F, Fut>(test: F)
where
    F: FnOnce(PgStore, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestDb::create().await;
    let outcome = match PgStore::connect(&db.url).await {
        Ok(store) => {
            let outcome = tokio::spawn(test(store.clone(), db.url.clone())).await;
            store.close().await;
            outcome.map_err(|e| match e.try_into_panic() {
                Ok(panic) => panic,
                Err(e) => Box::new(format!("test task failed: {e}")),
            })
        }
        Err(e) => Err(Box::new(format!("PgStore::connect to a fresh database: {e}")) as _),
    };
    db.drop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// [`with_store`] for the generic suites, which need only the store.
async fn with_pg<F, Fut>(test: F)
where
    F: FnOnce(PgStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_store(|store, _| test(store)).await;
}

canvas_storage::contract_tests!(users, with_pg, |store| (&store));
canvas_storage::contract_tests!(projects, with_pg, |store| (&store, &store));
canvas_storage::contract_tests!(audit, with_pg, |store| (&store, &store));
canvas_storage::contract_tests!(data, with_pg, |store| (&store, &store, &store));
canvas_storage::contract_tests!(webhooks, with_pg, |store| (&store, &store, &store));

/// Every relational suite at once on one database, twice over: they must not see each other's
/// data, and the pool must serve them concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suites_run_concurrently_on_one_database() {
    with_store(|store, _| async move {
        let all = || async {
            tokio::join!(
                testing::users::all(&store),
                testing::projects::all(&store, &store),
                testing::audit::all(&store, &store),
            );
        };
        tokio::join!(all(), all());
    })
    .await;
}

/// Connecting again to a migrated database migrates nothing and keeps the data.
#[tokio::test]
async fn reconnecting_keeps_data() {
    with_store(|store, url| async move {
        let user = testing::new_user(&store).await;
        let again = PgStore::connect(&url).await.expect("second connect");
        assert_eq!(
            again.user_by_id(user.id).await.expect("user_by_id"),
            Some(user)
        );
        let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(again.pool())
            .await
            .expect("count migrations");
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .expect("migrations folder")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count();
        assert_eq!(migrations, files as i64, "each migration ran once");
        again.close().await;
    })
    .await;
}

/// A port where nothing listens: `Unreachable` naming PostgreSQL, at once, with the address
/// and without the password.
#[tokio::test]
async fn nothing_listening_is_unreachable_quickly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    drop(listener);
    let url = format!("postgres://canvas:pa55word@127.0.0.1:{port}/canvas");
    let started = Instant::now();
    let result = PgStore::connect(&url).await;
    let took = started.elapsed();
    match result {
        Err(StorageError::Unreachable { service, cause }) => {
            assert_eq!(service, "PostgreSQL");
            assert!(
                cause.contains(&format!("127.0.0.1:{port}")),
                "the cause names the address: {cause}"
            );
            assert!(!cause.contains("pa55word"), "password in {cause:?}");
            let shown = StorageError::Unreachable { service, cause }.to_string();
            eprintln!("{shown}");
            assert!(shown.starts_with("cannot reach PostgreSQL"), "{shown}");
            assert!(!shown.contains("pa55word"), "{shown}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(2),
        "a refused connection fails at once, took {took:?}"
    );
}

/// A reachable server without the database, and a URL that does not parse: `Unreachable`
/// with the reason, never the password.
#[tokio::test]
async fn missing_database_and_bad_url_are_unreachable() {
    let missing = format!("canvas_test_missing_{}", Uuid::new_v4().simple());
    let url = with_database(&admin_url(), &missing);
    match PgStore::connect(&url).await {
        Err(StorageError::Unreachable { service, cause }) => {
            assert_eq!(service, "PostgreSQL");
            assert!(cause.contains(&missing), "the cause says why: {cause}");
            assert!(
                cause.starts_with("postgres://"),
                "the cause names the server: {cause}"
            );
            eprintln!("{cause}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    match PgStore::connect("postgres://canvas:s3cret@127.0.0.1:notaport/canvas").await {
        Err(StorageError::Unreachable { service, cause }) => {
            assert_eq!(service, "PostgreSQL");
            assert!(!cause.contains("s3cret"), "password in {cause:?}");
            eprintln!("{cause}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// The migrated schema is the seed's: ten tables with their columns, types, nullability and
/// defaults, keys and references, and the four named indexes; 0002 and 0003 add only
/// indexes, 0004 the analytics columns named below.
#[tokio::test]
async fn schema_is_the_seeds() {
    with_store(|store, _| async move {
        let pool = store.pool();
        let tables: BTreeSet<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(pool)
        .await
        .expect("tables")
        .into_iter()
        .collect();
        let seed_tables = [
            "organizations",
            "users",
            "projects",
            "project_members",
            "data_sources",
            "data_pipelines",
            "saved_queries",
            "query_executions",
            "ai_interactions",
            "audit_logs",
        ];
        let mut expected: BTreeSet<String> = seed_tables.iter().map(|t| t.to_string()).collect();
        expected.insert("_sqlx_migrations".into());
        // Migration 0006: webhook subscriptions, their outbox and its attempts.
        for table in ["webhooks", "webhook_deliveries", "webhook_attempts"] {
            expected.insert(table.into());
        }
        assert_eq!(
            tables, expected,
            "the seed's ten tables, the webhook tables and sqlx's own"
        );

        // Columns in the seed's order, as PostgreSQL describes them.
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
             || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END \
             || COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
             AND c.relname = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY array_position($1, c.relname::text), a.attnum",
        )
        .bind(seed_tables)
        .fetch_all(pool)
        .await
        .expect("columns");
        assert_eq!(columns, SEED_COLUMNS, "columns of the seed's tables");

        let constraints: BTreeSet<String> = sqlx::query_scalar(
            "SELECT c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1)",
        )
        .bind(seed_tables)
        .fetch_all(pool)
        .await
        .expect("constraints")
        .into_iter()
        .collect();
        let expected: BTreeSet<String> = SEED_CONSTRAINTS.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            constraints, expected,
            "keys, unique columns (by the names the store maps to Conflict fields) and references"
        );

        let indexes: BTreeSet<String> = sqlx::query_scalar(
            "SELECT replace(indexdef, ' ON ' || schemaname || '.', ' ON ') FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename = ANY($1) \
             AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        )
        .bind(seed_tables)
        .fetch_all(pool)
        .await
        .expect("indexes")
        .into_iter()
        .collect();
        let expected: BTreeSet<String> = SEED_INDEXES
            .iter()
            .chain(PRODUCT_INDEXES)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            indexes, expected,
            "the seed's four named indexes and 0002's"
        );
    })
    .await;
}

/// `table.column type [NOT NULL] [DEFAULT expr]` of the seed's tables, in its order. The
/// primary key columns of project_members are NOT NULL because they are the primary key.
const SEED_COLUMNS: &[&str] = &[
    "organizations.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "organizations.name character varying(255) NOT NULL",
    "organizations.slug character varying(255) NOT NULL",
    "organizations.plan_type character varying(50) NOT NULL DEFAULT 'free'::character varying",
    "organizations.settings jsonb DEFAULT '{}'::jsonb",
    "organizations.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "organizations.updated_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "users.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "users.email character varying(255) NOT NULL",
    "users.username character varying(255) NOT NULL",
    "users.hashed_password text",
    "users.first_name character varying(255)",
    "users.last_name character varying(255)",
    "users.avatar_url text",
    "users.organization_id uuid",
    "users.role character varying(50) NOT NULL DEFAULT 'member'::character varying",
    "users.settings jsonb DEFAULT '{}'::jsonb",
    "users.last_login_at timestamp without time zone",
    "users.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "users.updated_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "projects.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "projects.name character varying(255) NOT NULL",
    "projects.description text",
    "projects.organization_id uuid",
    "projects.owner_id uuid",
    "projects.settings jsonb DEFAULT '{}'::jsonb",
    "projects.is_archived boolean DEFAULT false",
    "projects.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "projects.updated_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "project_members.project_id uuid NOT NULL",
    "project_members.user_id uuid NOT NULL",
    "project_members.role character varying(50) NOT NULL",
    "project_members.permissions jsonb DEFAULT '{}'::jsonb",
    "project_members.invited_by uuid",
    "project_members.joined_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "data_sources.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "data_sources.project_id uuid",
    "data_sources.name character varying(255) NOT NULL",
    "data_sources.type character varying(50) NOT NULL",
    "data_sources.connection_config jsonb NOT NULL",
    "data_sources.schema_info jsonb",
    "data_sources.metadata jsonb DEFAULT '{}'::jsonb",
    "data_sources.status character varying(50) NOT NULL DEFAULT 'active'::character varying",
    "data_sources.last_sync_at timestamp without time zone",
    "data_sources.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "data_sources.updated_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "data_pipelines.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "data_pipelines.project_id uuid",
    "data_pipelines.name character varying(255) NOT NULL",
    "data_pipelines.source_id uuid",
    "data_pipelines.pipeline_config jsonb NOT NULL",
    "data_pipelines.schedule_cron character varying(255)",
    "data_pipelines.is_active boolean DEFAULT true",
    "data_pipelines.last_run_at timestamp without time zone",
    "data_pipelines.next_run_at timestamp without time zone",
    "data_pipelines.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "data_pipelines.updated_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "data_pipelines.last_status character varying(20)",
    "data_pipelines.last_error text",
    "data_pipelines.run_count integer NOT NULL DEFAULT 0",
    "saved_queries.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "saved_queries.project_id uuid",
    "saved_queries.name character varying(255) NOT NULL",
    "saved_queries.query_text text NOT NULL",
    "saved_queries.query_type character varying(50) NOT NULL",
    "saved_queries.parameters jsonb DEFAULT '{}'::jsonb",
    "saved_queries.created_by uuid",
    "saved_queries.is_public boolean DEFAULT false",
    "saved_queries.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "saved_queries.updated_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    // Migration 0004: the database source a query runs on.
    "saved_queries.data_source_id uuid",
    "query_executions.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "query_executions.query_id uuid",
    "query_executions.executed_by uuid",
    "query_executions.status character varying(50) NOT NULL",
    "query_executions.parameters jsonb DEFAULT '{}'::jsonb",
    "query_executions.result_location text",
    "query_executions.error_message text",
    "query_executions.execution_time_ms integer",
    "query_executions.rows_returned integer",
    "query_executions.started_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "query_executions.completed_at timestamp without time zone",
    // Migration 0004: the result's cache key, whether it came from the cache, when computed.
    "query_executions.query_hash text",
    "query_executions.from_cache boolean NOT NULL DEFAULT false",
    "query_executions.computed_at timestamp without time zone",
    "ai_interactions.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "ai_interactions.user_id uuid",
    "ai_interactions.project_id uuid",
    "ai_interactions.interaction_type character varying(50) NOT NULL",
    "ai_interactions.request jsonb NOT NULL",
    "ai_interactions.response jsonb NOT NULL",
    "ai_interactions.provider character varying(50) NOT NULL",
    "ai_interactions.model character varying(100) NOT NULL",
    "ai_interactions.input_tokens integer",
    "ai_interactions.output_tokens integer",
    "ai_interactions.cost_usd numeric(10,6)",
    "ai_interactions.latency_ms integer",
    "ai_interactions.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
    "audit_logs.id uuid NOT NULL DEFAULT gen_random_uuid()",
    "audit_logs.user_id uuid",
    "audit_logs.organization_id uuid",
    "audit_logs.action character varying(255) NOT NULL",
    "audit_logs.resource_type character varying(50) NOT NULL",
    "audit_logs.resource_id uuid",
    "audit_logs.changes jsonb",
    "audit_logs.ip_address inet",
    "audit_logs.user_agent text",
    "audit_logs.created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP",
];

/// `table constraint definition` of the seed's tables (PostgreSQL's default names).
const SEED_CONSTRAINTS: &[&str] = &[
    "organizations organizations_pkey PRIMARY KEY (id)",
    "organizations organizations_slug_key UNIQUE (slug)",
    "users users_pkey PRIMARY KEY (id)",
    "users users_email_key UNIQUE (email)",
    "users users_username_key UNIQUE (username)",
    "users users_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES organizations(id)",
    "projects projects_pkey PRIMARY KEY (id)",
    "projects projects_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES organizations(id)",
    "projects projects_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users(id)",
    "project_members project_members_pkey PRIMARY KEY (project_id, user_id)",
    "project_members project_members_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects(id)",
    "project_members project_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)",
    "project_members project_members_invited_by_fkey FOREIGN KEY (invited_by) REFERENCES users(id)",
    "data_sources data_sources_pkey PRIMARY KEY (id)",
    "data_sources data_sources_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects(id)",
    "data_pipelines data_pipelines_pkey PRIMARY KEY (id)",
    "data_pipelines data_pipelines_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects(id)",
    "data_pipelines data_pipelines_source_id_fkey FOREIGN KEY (source_id) REFERENCES data_sources(id)",
    "saved_queries saved_queries_pkey PRIMARY KEY (id)",
    "saved_queries saved_queries_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects(id)",
    "saved_queries saved_queries_created_by_fkey FOREIGN KEY (created_by) REFERENCES users(id)",
    // Migration 0004.
    "saved_queries saved_queries_data_source_id_fkey FOREIGN KEY (data_source_id) REFERENCES data_sources(id)",
    "query_executions query_executions_pkey PRIMARY KEY (id)",
    "query_executions query_executions_query_id_fkey FOREIGN KEY (query_id) REFERENCES saved_queries(id)",
    "query_executions query_executions_executed_by_fkey FOREIGN KEY (executed_by) REFERENCES users(id)",
    "ai_interactions ai_interactions_pkey PRIMARY KEY (id)",
    "ai_interactions ai_interactions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)",
    "ai_interactions ai_interactions_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects(id)",
    "audit_logs audit_logs_pkey PRIMARY KEY (id)",
    "audit_logs audit_logs_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)",
    "audit_logs audit_logs_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES organizations(id)",
];

/// The seed's four named indexes.
const SEED_INDEXES: &[&str] = &[
    "CREATE INDEX idx_projects_org ON projects USING btree (organization_id)",
    "CREATE INDEX idx_data_sources_project ON data_sources USING btree (project_id)",
    "CREATE INDEX idx_audit_logs_user ON audit_logs USING btree (user_id, created_at DESC)",
    "CREATE INDEX idx_ai_interactions_user ON ai_interactions USING btree (user_id, created_at DESC)",
];

/// What migrations 0002 to 0004 add for the product's queries, case-insensitive names and
/// the analytics tables.
const PRODUCT_INDEXES: &[&str] = &[
    "CREATE UNIQUE INDEX users_email_lower_key ON users USING btree (lower((email)::text))",
    "CREATE INDEX idx_projects_owner ON projects USING btree (owner_id, created_at DESC)",
    "CREATE INDEX idx_project_members_user ON project_members USING btree (user_id)",
    "CREATE INDEX idx_audit_logs_org ON audit_logs USING btree (organization_id, created_at DESC)",
    "CREATE INDEX idx_audit_logs_resource ON audit_logs USING btree (resource_type, resource_id, created_at DESC)",
    "CREATE INDEX idx_audit_logs_created ON audit_logs USING btree (created_at DESC)",
    // Migration 0003.
    "CREATE UNIQUE INDEX users_username_lower_key ON users USING btree (lower((username)::text))",
    // Migration 0004.
    "CREATE UNIQUE INDEX data_sources_project_name ON data_sources USING btree (project_id, lower((name)::text))",
    "CREATE INDEX idx_saved_queries_project ON saved_queries USING btree (project_id, created_at DESC)",
    "CREATE INDEX idx_query_executions_query ON query_executions USING btree (query_id, started_at DESC)",
    // Migration 0005.
    "CREATE INDEX idx_data_pipelines_due ON data_pipelines USING btree (next_run_at) WHERE is_active",
    "CREATE INDEX idx_data_pipelines_project ON data_pipelines USING btree (project_id, lower((name)::text))",
];

/// Concurrent signups race past the store's checks; the constraints decide. One email: one
/// signup wins, the others get Conflict("email"). Usernames making one slug: all sign up,
/// each with an organization and slug of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signups_are_decided_by_constraints() {
    with_store(|store, _| async move {
        let tag = Uuid::new_v4().simple().to_string();
        let email = format!("race.{tag}@example.com");
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            let email = if i % 2 == 0 {
                email.clone()
            } else {
                email.to_uppercase()
            };
            let username = format!("race{i}_{tag}");
            tasks.push(tokio::spawn(async move {
                store
                    .create_user(NewUser {
                        email,
                        username,
                        hashed_password: "x".into(),
                    })
                    .await
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => won += 1,
                Err(StorageError::Conflict(field)) => assert_eq!(field, "email"),
                Err(e) => panic!("expected Conflict(\"email\"), got {e:?}"),
            }
        }
        assert_eq!(won, 1, "exactly one signup with the email");

        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            // "Same.{tag}", "same-{tag}", ...: all slugify to "same-{tag}".
            let username = format!("{}{}{tag}", ["Same", "same"][i % 2], [".", "-", "_"][i % 3]);
            let username = format!("{username}{}", " ".repeat(i));
            let email = format!("slug{i}.{tag}@example.com");
            tasks.push(tokio::spawn(async move {
                store
                    .create_user(NewUser {
                        email,
                        username,
                        hashed_password: "x".into(),
                    })
                    .await
            }));
        }
        let mut orgs = BTreeSet::new();
        for task in tasks {
            let user = task
                .await
                .expect("task")
                .expect("signup with a shared slug");
            orgs.insert(user.organization_id.expect("an organization"));
        }
        assert_eq!(orgs.len(), 8, "one organization per signup");
        let slugs: BTreeSet<String> =
            sqlx::query_scalar("SELECT slug FROM organizations WHERE id = ANY($1)")
                .bind(orgs.into_iter().collect::<Vec<_>>())
                .fetch_all(store.pool())
                .await
                .expect("slugs")
                .into_iter()
                .collect();
        assert_eq!(slugs.len(), 8, "distinct slugs: {slugs:?}");
        assert!(slugs.contains(&format!("same-{tag}")), "{slugs:?}");
    })
    .await;
}

/// The constraint-name mapping, made deterministic: another transaction holds an
/// uncommitted user, so the store's checks (READ COMMITTED) do not see it and its insert
/// waits on the unique index until that transaction commits, then violates it.
#[tokio::test]
async fn unique_violations_map_to_the_field_by_constraint_name() {
    with_store(|store, _| async move {
        for (field, same_email) in [("email", true), ("username", false)] {
            let tag = Uuid::new_v4().simple().to_string();
            let (email, username) = (format!("held.{tag}@example.com"), format!("held_{tag}"));
            let mut tx = store.pool().begin().await.expect("begin");
            sqlx::query("INSERT INTO users (email, username) VALUES ($1, $2)")
                .bind(&email)
                .bind(&username)
                .execute(&mut *tx)
                .await
                .expect("insert the held user");
            let racer = tokio::spawn({
                let store = store.clone();
                let new = if same_email {
                    NewUser {
                        email: email.to_uppercase(),
                        username: format!("other_{tag}"),
                        hashed_password: "x".into(),
                    }
                } else {
                    NewUser {
                        email: format!("other.{tag}@example.com"),
                        username: username.clone(),
                        hashed_password: "x".into(),
                    }
                };
                async move { store.create_user(new).await }
            });
            // Wait until the racing insert is blocked on a lock (the index entry the held
            // transaction wrote), as PostgreSQL itself reports it.
            testing::wait_until(
                "the racing insert waits on a lock",
                Duration::from_secs(10),
                || async {
                    assert!(
                        !racer.is_finished(),
                        "the racing insert must wait on the index"
                    );
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    )
                    .fetch_one(store.pool())
                    .await
                    .expect("pg_stat_activity");
                    waiting > 0
                },
            )
            .await;
            assert!(!racer.is_finished(), "the racing insert waits on the index");
            tx.commit().await.expect("commit");
            match racer.await.expect("task") {
                Err(StorageError::Conflict(f)) => assert_eq!(f, field),
                other => panic!("expected Conflict({field:?}), got {other:?}"),
            }
        }
        // The refused signups left no organization behind.
        let orphans: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM organizations o \
             WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.organization_id = o.id)",
        )
        .fetch_one(store.pool())
        .await
        .expect("count");
        assert_eq!(orphans, 0, "a refused signup rolls back its organization");
    })
    .await;
}

/// Timestamps are UTC whatever the database's time zone, in what the store writes and in
/// the schema's CURRENT_TIMESTAMP defaults.
#[tokio::test]
async fn timestamps_are_utc_whatever_the_server_zone() {
    let db = TestDb::create().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {} SET timezone TO 'Pacific/Kiritimati'",
        db.name
    )))
    .execute(&db.admin)
    .await
    .expect("set the database's time zone");
    let outcome = tokio::spawn({
        let url = db.url.clone();
        async move {
            let store = PgStore::connect(&url).await.expect("connect");
            let user = testing::new_user(&store).await;
            assert!(
                (Utc::now() - user.created_at).abs() < TimeDelta::seconds(60),
                "created_at {} is now in UTC",
                user.created_at
            );
            let stored: String = sqlx::query_scalar(
                "SELECT to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM users \
                 WHERE id = $1",
            )
            .bind(user.id)
            .fetch_one(store.pool())
            .await
            .expect("raw created_at");
            assert_eq!(
                stored,
                user.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "the column holds UTC wall time"
            );
            // A row made by the schema's defaults alone.
            let default_at: chrono::NaiveDateTime = sqlx::query_scalar(
                "INSERT INTO organizations (name, slug) VALUES ('d', $1) RETURNING created_at",
            )
            .bind(testing::unique("d-"))
            .fetch_one(store.pool())
            .await
            .expect("insert with defaults");
            assert!(
                (Utc::now() - default_at.and_utc()).abs() < TimeDelta::seconds(60),
                "CURRENT_TIMESTAMP default {default_at} is UTC"
            );
            assert_eq!(
                store.user_by_id(user.id).await.expect("user_by_id"),
                Some(user)
            );
            store.close().await;
        }
    })
    .await;
    db.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// What the trait cannot express: archived projects (and NULL, the seed's other "not
/// archived") in lists, and stored roles that do not parse.
#[tokio::test]
async fn archived_projects_and_corrupt_roles() {
    with_store(|store, _| async move {
        let owner = testing::new_user(&store).await;
        let member = testing::new_user(&store).await;
        let project = store
            .create_project(NewProject {
                name: "to archive".into(),
                description: None,
                organization_id: owner.organization_id,
                owner_id: owner.id,
            })
            .await
            .expect("create_project");
        store
            .put_member(NewMember {
                project_id: project.id,
                user_id: member.id,
                role: Role::Editor,
                invited_by: Some(owner.id),
            })
            .await
            .expect("put_member");

        let set_archived = |value: Option<bool>| {
            let pool = store.pool().clone();
            async move {
                sqlx::query("UPDATE projects SET is_archived = $1 WHERE id = $2")
                    .bind(value)
                    .bind(project.id)
                    .execute(&pool)
                    .await
                    .expect("update is_archived");
            }
        };
        set_archived(None).await;
        assert_eq!(
            store
                .projects_for_user(member.id, false)
                .await
                .expect("list")
                .len(),
            1,
            "NULL is not archived"
        );
        assert!(
            !store
                .project(project.id)
                .await
                .expect("project")
                .expect("exists")
                .is_archived
        );

        set_archived(Some(true)).await;
        assert!(
            store
                .projects_for_user(owner.id, false)
                .await
                .expect("list")
                .is_empty()
        );
        assert!(
            store
                .projects_for_user(member.id, false)
                .await
                .expect("list")
                .is_empty()
        );
        assert!(
            store
                .project(project.id)
                .await
                .expect("project")
                .expect("exists")
                .is_archived
        );

        sqlx::query("UPDATE project_members SET role = 'superuser' WHERE project_id = $1")
            .bind(project.id)
            .execute(store.pool())
            .await
            .expect("corrupt the role");
        assert!(matches!(
            store.member_role(project.id, member.id).await,
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            store.members(project.id).await,
            Err(StorageError::Corrupt(_))
        ));
        assert_eq!(
            store.member_role(project.id, owner.id).await.expect("role"),
            Some(Role::Owner),
            "the owner's role does not depend on member rows"
        );
    })
    .await;
}

/// A role change keeps when and by whom the member was added.
#[tokio::test]
async fn member_upsert_keeps_joined_at_and_invited_by() {
    with_store(|store, _| async move {
        let owner = testing::new_user(&store).await;
        let admin = testing::new_user(&store).await;
        let member = testing::new_user(&store).await;
        let project = store
            .create_project(NewProject {
                name: "p".into(),
                description: None,
                organization_id: owner.organization_id,
                owner_id: owner.id,
            })
            .await
            .expect("create_project");
        let first = store
            .put_member(NewMember {
                project_id: project.id,
                user_id: member.id,
                role: Role::Viewer,
                invited_by: Some(owner.id),
            })
            .await
            .expect("put_member");
        // Distinct timestamps: a role change a moment later would stamp a later joined_at,
        // so the equality below shows the first one is kept.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let changed = store
            .put_member(NewMember {
                project_id: project.id,
                user_id: member.id,
                role: Role::Admin,
                invited_by: Some(admin.id),
            })
            .await
            .expect("put_member");
        assert_eq!(changed.role, Role::Admin);
        assert_eq!(changed.joined_at, first.joined_at);
        assert_eq!(changed.invited_by, Some(owner.id));
        assert_eq!(
            store.members(project.id).await.expect("members"),
            vec![changed]
        );
        assert!(
            matches!(
                store
                    .put_member(NewMember {
                        project_id: project.id,
                        user_id: admin.id,
                        role: Role::Viewer,
                        invited_by: Some(Uuid::new_v4()),
                    })
                    .await,
                Err(StorageError::NotFound(_))
            ),
            "an unknown inviter is a missing reference"
        );
    })
    .await;
}

/// The default limit and the cap, observable on a database nothing else writes to; and an
/// audit entry naming an unknown user is a missing reference.
#[tokio::test]
async fn audit_limit_defaults_to_100_and_caps_at_1000() {
    with_store(|store, _| async move {
        for i in 0..1001 {
            store
                .record(NewAuditEntry {
                    action: format!("a{i}"),
                    resource_type: "test".into(),
                    ..Default::default()
                })
                .await
                .expect("record");
        }
        let default = store.list(AuditFilter::default()).await.expect("list");
        assert_eq!(default.len(), 100);
        assert_eq!(default[0].action, "a1000", "newest first");
        let capped = store
            .list(AuditFilter {
                limit: Some(5000),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(capped.len(), 1000);
        assert!(matches!(
            store
                .record(NewAuditEntry {
                    user_id: Some(Uuid::new_v4()),
                    action: "x".into(),
                    resource_type: "test".into(),
                    ..Default::default()
                })
                .await,
            Err(StorageError::NotFound(_))
        ));
    })
    .await;
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/postgres", "x"),
        "postgres://u:p@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}
