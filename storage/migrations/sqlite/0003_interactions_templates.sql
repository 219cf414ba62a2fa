-- How canvases are used (the seed's `interactions` of a canvas document) and canvas
-- templates (the seed's MongoDB `canvas_templates`).

CREATE TABLE canvas_interactions (
    canvas_id TEXT PRIMARY KEY NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
    views INTEGER NOT NULL DEFAULT 0,
    last_viewed_at TEXT,
    comments_count INTEGER NOT NULL DEFAULT 0,
    favorites_count INTEGER NOT NULL DEFAULT 0
);

-- user_id is not a foreign key: users may live in PostgreSQL while canvases live here.
CREATE TABLE canvas_favorites (
    user_id TEXT NOT NULL,
    canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, canvas_id)
);

CREATE INDEX idx_canvas_favorites_user ON canvas_favorites(user_id, created_at DESC);

CREATE TABLE canvas_templates (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    category TEXT,
    thumbnail_url TEXT,
    is_public INTEGER NOT NULL DEFAULT 0,
    usage_count INTEGER NOT NULL DEFAULT 0,
    -- JSON array of blocks in the canvas JSON shape.
    blocks TEXT NOT NULL,
    -- JSON array of strings.
    required_fields TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL,
    organization_id TEXT,
    created_at TEXT NOT NULL
);

CREATE INDEX idx_canvas_templates_org ON canvas_templates(organization_id);
