-- Usernames are unique case-insensitively, like emails (0002): "Ann" and "ann" would be one
-- name to every reader. The store checks `lower(username)` before inserting and maps a
-- violation of this index, by name, to Conflict("username"). Signup only accepts ASCII
-- usernames, so `lower` folds them exactly. A database that already holds two usernames
-- differing only in case fails this migration, naming them: rename one and start again.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
