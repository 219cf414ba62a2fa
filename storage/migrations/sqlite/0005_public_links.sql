-- A canvas's public link, kept by the server only (MongoDB: the canvas document's
-- `public_link_secret`). The shared document holds only the link's id; a guest's token is
-- compared with `public_link_token`. All three are NULL when the canvas has no link.
ALTER TABLE canvases ADD COLUMN public_link_id TEXT;
ALTER TABLE canvases ADD COLUMN public_link_token TEXT;
ALTER TABLE canvases ADD COLUMN public_link_created_at TEXT;
