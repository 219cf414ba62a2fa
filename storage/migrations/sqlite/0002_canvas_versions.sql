-- Version history of canvases (MongoDB `canvas_versions` in the services): numbered
-- snapshots with who made them, when, why (`changes`) and how (`kind`: initial, auto, named,
-- restore). `canvases.version` is the latest number.
CREATE TABLE canvas_versions (
    canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    changes TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    -- yrs v1 update holding the whole document at this version.
    state BLOB NOT NULL,
    -- JSON view of the document at this version.
    view TEXT NOT NULL,
    PRIMARY KEY (canvas_id, version)
);

-- Canvases made before versions existed get their current snapshot as version 1, so every
-- canvas has a history to restore from.
INSERT INTO canvas_versions (canvas_id, version, kind, changes, changed_by, changed_at, state, view)
SELECT id, 1, 'initial', 'Initial creation', owner_id, created_at, snapshot, view FROM canvases;
