-- Usernames are unique case-insensitively, like emails: "Ann" and "ann" would be one name to
-- every reader. Signup only accepts ASCII usernames, which SQLite's `lower` folds. The store
-- checks `lower(username)` before inserting; a violation of this index (whose message names
-- it) is Conflict("username").
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
