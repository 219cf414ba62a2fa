-- What the product needs beyond the seed's schema: indexes only, no new tables or columns.

-- Emails are unique and looked up case-insensitively (`UserStore::user_by_email`, signup):
-- the seed's `users_email_key` compares exactly, so "Ann@x.io" and "ann@x.io" could both
-- sign up without this. The store maps a violation of it, by name, to Conflict("email").
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- `ProjectStore::projects_for_user`: the projects a user owns, newest first ...
CREATE INDEX idx_projects_owner ON projects (owner_id, created_at DESC);
-- ... and those they are a member of (the primary key leads with project_id).
CREATE INDEX idx_project_members_user ON project_members (user_id);

-- `AuditStore::list`: by organization, by resource, or everything, newest first (the seed's
-- idx_audit_logs_user covers lists by user).
CREATE INDEX idx_audit_logs_org ON audit_logs (organization_id, created_at DESC);
CREATE INDEX idx_audit_logs_resource ON audit_logs (resource_type, resource_id, created_at DESC);
CREATE INDEX idx_audit_logs_created ON audit_logs (created_at DESC);
