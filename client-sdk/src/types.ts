/** Request and response shapes of the REST API under `/api/v1` (see the repository README). */

/** A project or canvas role, lowest to highest. */
export type Role = 'viewer' | 'editor' | 'admin' | 'owner'

/** A user (never with the password hash). */
export interface User {
  id: string
  email: string
  username: string
  first_name: string | null
  last_name: string | null
  avatar_url: string | null
  organization_id: string | null
  role: string
  last_login_at: string | null
  created_at: string
}

/** `POST /auth/signup` and `POST /auth/login` answer. */
export interface AuthResponse {
  user: User
  token: string
}

/** A project, with the caller's role in it. */
export interface Project {
  id: string
  name: string
  description: string | null
  organization_id: string | null
  owner_id: string
  is_archived: boolean
  created_at: string
  updated_at: string
  role: Role
}

/** `PATCH /projects/{id}` body. */
export interface ProjectPatch {
  name?: string
  description?: string | null
  is_archived?: boolean
}

/** A project membership. */
export interface Member {
  project_id: string
  user_id: string
  role: Exclude<Role, 'owner'>
  invited_by: string | null
  joined_at: string
}

/** `POST /projects/{id}/members` body: one of `email` or `user_id`. */
export type NewMember =
  | { email: string, role: Exclude<Role, 'owner'> }
  | { user_id: string, role: Exclude<Role, 'owner'> }

/** A canvas in a project's list. */
export interface CanvasSummary {
  id: string
  project_id: string
  owner_id: string
  name: string
  description: string | null
  version: number
  created_at: string
  updated_at: string
}

/** `POST /projects/{id}/canvases` body. */
export interface NewCanvas {
  name: string
  description?: string
  tags?: string[]
  /** Start from this template's blocks. */
  template_id?: string
}

/** A block in the JSON view. */
export interface BlockJson {
  id: string
  type: string
  position: { x: number, y: number, w: number, h: number }
  content: Record<string, unknown>
  metadata?: Record<string, unknown>
}

/** One entry of `metadata.version_history`. */
export interface VersionHistoryEntry {
  version: number
  changes: string
  changed_by: string
  changed_at: string
}

/** The canvas as JSON (the seed's MongoDB shape, blocks as an array). */
export interface CanvasJson {
  id: string
  project_id: string
  owner_id: string
  name: string
  description: string | null
  version: number
  layout: { type: string, columns: number, rowHeight: number, breakpoints: Record<string, number> }
  blocks: BlockJson[]
  sharing: {
    visibility: string
    permissions: Array<{ user_id: string, role: string, granted_at?: string, granted_by?: string }>
    /** The public link's id, or null: never its token. */
    public_link: string | null
    embed_settings: { enabled: boolean, allowed_domains: string[] }
  }
  interactions?: Interactions
  /** Whether it is one of your favorites (absent when read through a public link). */
  is_favorite?: boolean
  metadata: {
    tags: string[]
    created_at: string
    updated_at: string
    version_history: VersionHistoryEntry[]
  }
}

/** One user's presence, as the server stores it. */
export interface PresenceEntry {
  user_id: string
  username: string
  cursor: unknown
  selection: unknown
  last_seen: string
}

/** `GET /canvases/{id}/presence` answer. */
export interface PresenceResponse {
  canvas_id: string
  presence: PresenceEntry[]
  active_users: string[]
}

/** How a version came to be. */
export type VersionKind = 'initial' | 'auto' | 'named' | 'restore'

/** A version record (`GET /canvases/{id}/versions` lists them newest first). */
export interface Version {
  version: number
  changes: string
  /** The user it is attributed to. */
  changed_by: string
  changed_at: string
  kind: VersionKind
}

/** `GET /canvases/{id}/versions/{v}/diff?to=w` answer. */
export interface VersionDiff {
  from: number
  /** `null`: compared with the live canvas. */
  to: number | null
  added: string[]
  removed: string[]
  moved: Array<{ id: string, from: BlockJson['position'], to: BlockJson['position'] }>
  content_changed: string[]
}

/** `POST /canvases/{id}/versions/{v}/restore` answer. */
export interface RestoreResponse {
  /** The new version the restore recorded (kind `restore`). */
  version: Version
  canvas: CanvasJson
}

/** `POST /canvases/{id}/versions/{v}/blocks/{block}/restore` answer. */
export interface BlockRestoreResponse {
  block: BlockJson
  /** The new version the restore recorded (kind `restore`). */
  version: Version
}

/** A canvas template. */
export interface Template {
  id: string
  name: string
  description: string | null
  category: string | null
  thumbnail_url: string | null
  is_public: boolean
  usage_count: number
  blocks: BlockJson[]
  required_fields: string[]
  /** The creator's user id, or `system` for the built-in templates. */
  created_by: string
  /** The creator's organization (null for built-ins). */
  organization_id: string | null
  created_at: string
}

/** `POST /templates` body: a template made from a canvas's blocks. */
export interface NewTemplate {
  canvas_id: string
  name: string
  description?: string
  category?: string
  thumbnail_url?: string
  is_public?: boolean
  required_fields?: string[]
}

/** `GET /canvases/{id}/sharing` answer. */
export interface Sharing {
  visibility: 'private' | 'team' | 'public'
  permissions: Array<{ user_id: string, role: Exclude<Role, 'owner'>, granted_at: string | null, granted_by: string | null }>
  /** The link token; only admins see it (others get null). */
  public_link: string | null
  /** Whether there is a public link (for everyone). */
  public_link_enabled: boolean
  embed_settings: { enabled: boolean, allowed_domains: string[] }
}

/** `POST /canvases/{id}/sharing/public-link` answer. */
export interface PublicLink {
  /** The token: `?link=TOKEN` on the canvas's REST and WebSocket addresses. */
  token: string
  /** `/api/v1/canvases/{id}?link=TOKEN` */
  url: string
  /** `/ws/{id}?link=TOKEN` */
  websocket: string
}

/** `PUT|DELETE /canvases/{id}/favorite` answer. */
export interface FavoriteState {
  canvas_id: string
  is_favorite: boolean
  favorites_count: number
}

/** A canvas's counters (`interactions` of its JSON view). */
export interface Interactions {
  views: number
  last_viewed_at: string | null
  comments_count: number
  favorites_count: number
}

/** `PATCH /canvases/{id}/sharing` body. */
export interface SharingPatch {
  visibility?: 'private' | 'team' | 'public'
  embed_settings?: { enabled?: boolean, allowed_domains?: string[] }
}

/** `GET /healthz` answer. */
export interface Health {
  status: string
  rooms: number
}
