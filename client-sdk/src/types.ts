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
  /** With `template_id`: the data source the template's bound blocks read. */
  data_source_id?: string
  /** The table of a `database` source with several. */
  table?: string
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
  interactions: Interactions
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
  /** The block as restored; null when the version did not have it (it was removed). */
  block: BlockJson | null
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

// ---- data sources, saved queries, executions, pipelines (README "Data sources, saved
// queries and executions" and "Pipelines"; server/src/http/{data_sources,queries,
// executions,pipelines}.rs) -----------------------------------------------------------------

/** A data source's kind. */
export type DataSourceType = 'file' | 'database' | 'api' | 'streaming'

/** One column of a source's table, as schema inference found it. */
export interface SchemaColumn {
  name: string
  /** Portable type: `integer`, `number`, `string`, `boolean`, `date`, `timestamp`, ... */
  type: string
  /** The engine's own type name. */
  native_type: string
  nullable: boolean
}

/** One table of a source (file, api and streaming sources have one, named after the source). */
export interface SchemaTable {
  name: string
  columns: SchemaColumn[]
  row_count?: number
}

/** A data source (`connection_config` with its secrets redacted). */
export interface DataSource {
  id: string
  project_id: string
  name: string
  type: DataSourceType | (string & {})
  connection_config: Record<string, unknown>
  /** `{tables: [...]}` once uploaded or synced. */
  schema_info: { tables: SchemaTable[] } | null
  metadata: Record<string, unknown>
  /** `active`, `error` (see `metadata.error`), ... */
  status: string
  last_sync_at: string | null
  created_at: string
  updated_at: string
}

/** `POST /projects/{id}/data-sources` body. */
export interface NewDataSource {
  name: string
  type: DataSourceType
  connection_config?: Record<string, unknown>
  metadata?: Record<string, unknown>
}

/** `PATCH /data-sources/{id}` body. */
export interface DataSourcePatch {
  name?: string
  connection_config?: Record<string, unknown>
  metadata?: Record<string, unknown>
}

/** The file formats `PUT /data-sources/{id}/file` takes, by content type. */
export type UploadContentType = 'text/csv' | 'application/vnd.apache.parquet' | 'application/x-ndjson'

/** A declared query parameter (`{{name}}` in the text, bound, never spliced). */
export interface QueryParameter {
  type: 'string' | 'number' | 'boolean' | 'date'
  default?: unknown
}

/** A saved query. */
export interface SavedQuery {
  id: string
  project_id: string
  name: string
  query_text: string
  query_type: string
  parameters: Record<string, QueryParameter>
  created_by: string | null
  is_public: boolean
  /** The `database` source it runs on (push-down); null for queries over the project's tables. */
  data_source_id: string | null
  created_at: string
  updated_at: string
}

/** `POST /projects/{id}/queries` body. */
export interface NewQuery {
  name: string
  query_text: string
  /** `sql` by default. */
  query_type?: string
  parameters?: Record<string, QueryParameter>
  data_source_id?: string | null
  is_public?: boolean
}

/** `PATCH /queries/{id}` body (`data_source_id: null` removes the source). */
export interface QueryPatch {
  name?: string
  query_text?: string
  query_type?: string
  parameters?: Record<string, QueryParameter>
  data_source_id?: string | null
  is_public?: boolean
}

/** An execution's state. */
export type ExecutionStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled'

/** An execution record. */
export interface Execution {
  id: string
  query_id: string
  executed_by: string | null
  status: ExecutionStatus | (string & {})
  parameters: Record<string, unknown>
  result_location: string | null
  error_message: string | null
  execution_time_ms: number | null
  rows_returned: number | null
  started_at: string
  completed_at: string | null
  query_hash: string | null
  from_cache: boolean
  computed_at: string | null
  /** While it has not ended: `{status, progress}` from `processing:{job_id}`. */
  progress?: { status: string, progress: number }
}

/** A result column. */
export interface ResultColumn {
  name: string
  /** `integer`, `number`, `string`, `boolean`, `date`, `timestamp`, `time`, `json`, `binary`, `other`. */
  type: string
}

/** Why a result holds fewer rows than the query produced (null: it holds them all). */
export type Truncation = 'row_limit' | 'byte_limit' | (string & {}) | null

/** `POST /queries/{id}/execute` answer: 200 with the result, or 202 with the execution to poll. */
export interface ExecuteResponse {
  execution: Execution
  /** The first rows (up to 1,000); absent when the execution is still running (202). */
  result?: { columns: ResultColumn[], rows: unknown[][], total_rows: number, offset: number }
  truncated?: Truncation
}

/** `GET /executions/{id}/result` answer. */
export interface ExecutionResult {
  columns: ResultColumn[]
  rows: unknown[][]
  total_rows: number
  offset: number
  truncated: Truncation
  computed_at: string
}

/** A pipeline: re-syncs one source on a cron schedule (UTC). */
export interface Pipeline {
  id: string
  project_id: string
  name: string
  source_id: string
  pipeline_config: Record<string, unknown>
  schedule_cron: string | null
  schedule_description: string | null
  is_active: boolean
  last_run_at: string | null
  next_run_at: string | null
  last_status: string | null
  last_error: string | null
  run_count: number
  created_at: string
  updated_at: string
}

/** `POST /projects/{id}/pipelines` body. */
export interface NewPipeline {
  name: string
  source_id: string
  schedule_cron: string
  pipeline_config?: Record<string, unknown>
  is_active?: boolean
}

/** `PATCH /pipelines/{id}` body. */
export interface PipelinePatch {
  name?: string
  schedule_cron?: string
  pipeline_config?: Record<string, unknown>
  is_active?: boolean
}

/** `POST /pipelines/{id}/run` answer. */
export interface PipelineRun {
  pipeline: Pipeline
  data_source: DataSource | null
  outcome: { status: 'ok' } | { status: 'error', error: string }
}

// ---- blocks bound to live data (README "Blocks bound to live data") ---------------------

/** A chart's series point and series (one per `config.color` value). */
export interface SeriesPoint { x: unknown, y: number | null }
export interface ChartSeries { name: string, points: SeriesPoint[] }

/**
 * A bound block's data: the body of extension message 102, and of
 * `GET /canvases/{id}/blocks/{block_id}/data` (which adds the table page fields).
 */
export interface BlockData {
  block_id: string
  /**
   * `completed`, `failed` (the query failed to run) or `error` (the binding is unusable);
   * over the WebSocket also `running`: an execution for the block started (its id in
   * `execution_id`, no data in the message; the SDK keeps the data it has and reports the
   * status, see `Canvas.dataStatus`).
   */
  status: 'completed' | 'failed' | 'error' | 'running' | (string & {})
  execution_id: string | null
  columns: ResultColumn[]
  /** The first rows (at most 1,000). */
  rows: unknown[][]
  total_rows: number
  /** When the result was computed (RFC 3339); null without a result. */
  computed_at: string | null
  from_cache: boolean
  /** A chart's series, shaped by the server from `config`. */
  series?: ChartSeries[]
  error?: { code: string, message: string }
  /**
   * The binding this data answers (`{query_id, parameters}`; absent for an unusable one).
   * The data can arrive before the edit that made the binding: compare with the block's
   * `content.data_source`.
   */
  binding?: { query_id: string, parameters: Record<string, unknown> }
}

/**
 * A column of a table page: the result column's `name` and `type`, plus the block's
 * `header` and `format` (`string`, `number`, `currency`, `percentage`) when the block lists
 * its `columns`.
 */
export interface TablePageColumn extends ResultColumn {
  header?: string
  format?: 'string' | 'number' | 'currency' | 'percentage' | (string & {})
}

/** `GET /canvases/{id}/blocks/{block_id}/data` answer: for a table one page, for a chart `series`. */
export interface BlockDataPage extends Omit<BlockData, 'columns'> {
  columns: TablePageColumn[]
  /** Tables: the page (from 1), its size, how many pages, the sort and filter applied. */
  page?: number
  page_size?: number
  pages?: number
  sort?: string | null
  filter?: string | null
  /** Charts: how many rows the result shows. */
  rows_shown?: number
}

/** What {@link RestClient.blockData} asks: a table's page (from 1), sort (`field`, `-field`), filter (`text`, `column:text`). */
export interface BlockDataRequest {
  page?: number
  sort?: string
  filter?: string
}
