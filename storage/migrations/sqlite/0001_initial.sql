-- Embedded (SQLite) schema. Mirrors the seed's PostgreSQL tables and column names
-- (organizations, users, projects, project_members, audit_logs) and adds the canvas tables
-- the services keep in MongoDB (canvases, canvas_updates) and the sessions Redis keeps.
--
-- Conventions: UUIDs are TEXT (hyphenated, lowercase); timestamps are TEXT in the fixed-width
-- RFC 3339 UTC form `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so they sort and compare as strings;
-- JSON columns are TEXT; booleans are INTEGER 0/1.

CREATE TABLE organizations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    slug TEXT UNIQUE NOT NULL,
    plan_type TEXT NOT NULL DEFAULT 'free',
    settings TEXT DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    -- Lowercase copy of `email`: uniqueness and lookups are case-insensitive.
    email_lower TEXT UNIQUE NOT NULL,
    username TEXT UNIQUE NOT NULL,
    hashed_password TEXT,
    first_name TEXT,
    last_name TEXT,
    avatar_url TEXT,
    organization_id TEXT REFERENCES organizations(id),
    role TEXT NOT NULL DEFAULT 'member',
    settings TEXT DEFAULT '{}',
    last_login_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    organization_id TEXT REFERENCES organizations(id),
    owner_id TEXT NOT NULL REFERENCES users(id),
    settings TEXT DEFAULT '{}',
    is_archived INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX idx_projects_org ON projects(organization_id);
CREATE INDEX idx_projects_owner ON projects(owner_id, created_at DESC);

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL, -- 'viewer', 'editor', 'admin'
    permissions TEXT DEFAULT '{}',
    invited_by TEXT REFERENCES users(id),
    joined_at TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

CREATE INDEX idx_project_members_user ON project_members(user_id);

CREATE TABLE audit_logs (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users(id),
    organization_id TEXT REFERENCES organizations(id),
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    changes TEXT,
    ip_address TEXT,
    user_agent TEXT,
    created_at TEXT NOT NULL
);

CREATE INDEX idx_audit_logs_user ON audit_logs(user_id, created_at DESC);
CREATE INDEX idx_audit_logs_org ON audit_logs(organization_id, created_at DESC);
CREATE INDEX idx_audit_logs_resource ON audit_logs(resource_type, resource_id, created_at DESC);
CREATE INDEX idx_audit_logs_created ON audit_logs(created_at DESC);

-- Bearer-token sessions (Redis `session:{user_id}` in the services). Only a SHA-256 hash of
-- the token is kept. No foreign key to users: like Redis, the store does not tie a session's
-- lifetime to the user row.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX idx_sessions_user ON sessions(user_id);
CREATE INDEX idx_sessions_expires ON sessions(expires_at);

-- Canvas records with their last snapshot (MongoDB `canvases` in the services). Like the
-- MongoDB documents, they carry project_id and owner_id without foreign keys.
CREATE TABLE canvases (
    id TEXT PRIMARY KEY NOT NULL,
    project_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    -- JSON view of the document at the last checkpoint.
    view TEXT NOT NULL,
    -- yrs v1 update holding the whole document as of `snapshot_seq`.
    snapshot BLOB NOT NULL,
    -- Last log sequence number the snapshot covers (0 before any update).
    snapshot_seq INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX idx_canvases_project ON canvases(project_id, created_at DESC);

-- The durable log of accepted updates since the last checkpoint.
CREATE TABLE canvas_updates (
    canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (canvas_id, seq)
);
