/**
 * `RestClient`: the REST API (`/api/v1`) with typed requests and responses. It imports no
 * Yjs (the `@canvas-engine/sdk/rest` entry point is this and the errors); `CanvasClient`
 * (`client.ts`) extends it with live canvases.
 *
 * The client keeps the session token it got from {@link RestClient.signup} or
 * {@link RestClient.login} and sends it as `Authorization: Bearer`. When a call answers
 * 401 and an `onTokenExpired` hook is configured, the hook is asked once for a new token
 * (e.g. log in again, or ask the user) and the call is retried with it; live canvases use
 * the same hook when their socket is closed with 4401.
 */

import { CanvasError, httpError } from './errors.js'
import type {
  AuthResponse, BlockData, BlockDataPage, BlockDataRequest, BlockRestoreResponse, CanvasJson,
  CanvasSummary, DataSource, DataSourcePatch, ExecuteResponse, Execution, ExecutionResult,
  FavoriteState, Health, Member, NewCanvas, NewDataSource, NewMember, NewPipeline, NewQuery,
  NewTemplate, Pipeline, PipelinePatch, PipelineRun, PresenceResponse, Project, ProjectPatch,
  PublicLink, QueryPatch, RestoreResponse, SavedQuery, Sharing, SharingPatch, Template,
  UploadContentType, User, Version, VersionDiff
} from './types.js'

/** Options of {@link RestClient}. */
export interface RestClientOptions {
  /** The server, e.g. `http://127.0.0.1:8080` (the API is under `/api/v1`). */
  baseUrl: string
  /** A session token to start with (from an earlier login). */
  token?: string | null
  /** `fetch` implementation (default `globalThis.fetch`). */
  fetch?: typeof globalThis.fetch
  /**
   * Called when the server rejects the token (HTTP 401, or close code 4401 on a live
   * canvas) with the client itself: return a new token to retry with, or null to give up.
   * Called at most once per failed call. (A method signature, so a hook typed for the
   * `CanvasClient` subclass fits too.)
   */
  onTokenExpired? (client: RestClient): Promise<string | null>
  /** Called whenever the token changes (login, signup, logout, refresh), e.g. to store it. */
  onTokenChange?: (token: string | null) => void
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

interface RequestOptions {
  body?: unknown
  /** A raw body sent as is with this content type (instead of JSON `body`). */
  raw?: { data: string | Uint8Array | Blob | ArrayBuffer, contentType: string }
  query?: Record<string, string | number | undefined>
  /** Send the token (default true). */
  auth?: boolean
}

const seg = encodeURIComponent

/** The REST API client. */
export class RestClient {
  /** The server's base address (no trailing slash). */
  readonly baseUrl: string
  private currentToken: string | null
  private readonly options: RestClientOptions
  private readonly fetchImpl: typeof globalThis.fetch

  constructor (options: RestClientOptions) {
    this.options = options
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.currentToken = options.token ?? null
    const f = options.fetch ?? globalThis.fetch
    if (f === undefined) {
      throw new CanvasError({ code: 'invalid_argument', source: 'local' }, 'no fetch implementation available')
    }
    this.fetchImpl = f.bind(globalThis)
  }

  /** The session token, or null when signed out. */
  get token (): string | null {
    return this.currentToken
  }

  /** Replaces the session token. */
  setToken (token: string | null): void {
    if (token === this.currentToken) return
    this.currentToken = token
    this.options.onTokenChange?.(token)
  }

  /** Asks the `onTokenExpired` hook for a new token; null if there is no hook or it gave none. */
  async refreshToken (): Promise<string | null> {
    const hook = this.options.onTokenExpired
    if (hook === undefined) return null
    const token = await hook(this)
    if (token !== null && token !== '') this.setToken(token)
    return token
  }

  // ---- transport -----------------------------------------------------------------------

  private async request<T> (method: Method, path: string, options: RequestOptions = {}): Promise<T> {
    const auth = options.auth ?? true
    const first = await this.send(method, path, options, auth)
    if (first.status === 401 && auth && this.options.onTokenExpired !== undefined) {
      const token = await this.refreshToken()
      if (token !== null && token !== '') return await this.parse<T>(await this.send(method, path, options, auth))
    }
    return await this.parse<T>(first)
  }

  private async send (method: Method, path: string, options: RequestOptions, auth: boolean): Promise<Response> {
    let url = `${this.baseUrl}${path.startsWith('/healthz') ? '' : '/api/v1'}${path}`
    if (options.query !== undefined) {
      const params = new URLSearchParams()
      for (const [k, v] of Object.entries(options.query)) if (v !== undefined) params.set(k, String(v))
      const qs = params.toString()
      if (qs !== '') url += `?${qs}`
    }
    const headers: Record<string, string> = { accept: 'application/json' }
    let body: BodyInit | undefined
    if (options.raw !== undefined) {
      headers['content-type'] = options.raw.contentType
      body = options.raw.data as BodyInit
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.body)
    }
    if (auth && this.currentToken !== null) headers.authorization = `Bearer ${this.currentToken}`
    try {
      return await this.fetchImpl(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {})
      })
    } catch (cause) {
      throw new CanvasError({ code: 'network', source: 'http', cause }, `${method} ${path}: ${String(cause)}`)
    }
  }

  private async parse<T> (response: Response): Promise<T> {
    const text = await response.text()
    let json: unknown = null
    if (text !== '') {
      try {
        json = JSON.parse(text)
      } catch {
        throw new CanvasError({ code: 'invalid_response', source: 'http', status: response.status },
          `${response.status}: the server answered with something that is not JSON`)
      }
    }
    if (!response.ok) {
      const error = (json as { error?: { code?: unknown, message?: unknown } } | null)?.error
      const code = typeof error?.code === 'string' ? error.code : `http_${response.status}`
      const message = typeof error?.message === 'string' ? error.message : response.statusText
      throw httpError(response.status, code, message, response.headers.get('retry-after'))
    }
    return json as T
  }

  // ---- auth ----------------------------------------------------------------------------

  /** Creates an account (with its own organization) and signs in as it. */
  async signup (body: { email: string, username: string, password: string }): Promise<AuthResponse> {
    const res = await this.request<AuthResponse>('POST', '/auth/signup', { body, auth: false })
    this.setToken(res.token)
    return res
  }

  /** Signs in; the client keeps the token. */
  async login (email: string, password: string): Promise<AuthResponse> {
    const res = await this.request<AuthResponse>('POST', '/auth/login', { body: { email, password }, auth: false })
    this.setToken(res.token)
    return res
  }

  /** Ends this session (other sessions of the user stay) and forgets the token. */
  async logout (): Promise<void> {
    try {
      await this.request<null>('POST', '/auth/logout')
    } finally {
      this.setToken(null)
    }
  }

  /** The signed-in user. */
  async me (): Promise<User> {
    return (await this.request<{ user: User }>('GET', '/auth/me')).user
  }

  // ---- projects and members ------------------------------------------------------------

  /** Creates a project you own. */
  async createProject (body: { name: string, description?: string }): Promise<Project> {
    return await this.request<Project>('POST', '/projects', { body })
  }

  /** Your projects, with your role in each (`archived: true`: your archived projects instead). */
  async listProjects (options: { archived?: boolean } = {}): Promise<Project[]> {
    const query = options.archived === true ? { archived: 'true' } : undefined
    return (await this.request<{ projects: Project[] }>('GET', '/projects', query !== undefined ? { query } : {})).projects
  }

  /** One project. */
  async getProject (id: string): Promise<Project> {
    return await this.request<Project>('GET', `/projects/${seg(id)}`)
  }

  /**
   * Renames, re-describes, archives (`is_archived: true`: its canvases become read-only for
   * everyone, open ones included) or restores a project (admins and the owner).
   */
  async updateProject (id: string, patch: ProjectPatch): Promise<Project> {
    return await this.request<Project>('PATCH', `/projects/${seg(id)}`, { body: patch })
  }

  /** A project's members and its owner. */
  async listMembers (projectId: string): Promise<{ owner_id: string, members: Member[] }> {
    return await this.request('GET', `/projects/${seg(projectId)}/members`)
  }

  /** Adds a member or changes their role (admins and the owner). */
  async addMember (projectId: string, member: NewMember): Promise<Member> {
    return await this.request<Member>('POST', `/projects/${seg(projectId)}/members`, { body: member })
  }

  /** Removes a member (admins and the owner). */
  async removeMember (projectId: string, userId: string): Promise<void> {
    await this.request<null>('DELETE', `/projects/${seg(projectId)}/members/${seg(userId)}`)
  }

  // ---- canvases ------------------------------------------------------------------------

  /** Creates a canvas (optionally from a template); answers its JSON view. */
  async createCanvas (projectId: string, body: NewCanvas): Promise<CanvasJson> {
    return await this.request<CanvasJson>('POST', `/projects/${seg(projectId)}/canvases`, { body })
  }

  /** A project's canvases. */
  async listCanvases (projectId: string): Promise<CanvasSummary[]> {
    return (await this.request<{ canvases: CanvasSummary[] }>('GET', `/projects/${seg(projectId)}/canvases`)).canvases
  }

  /** A canvas as JSON with its live blocks (`link`: read through a public link, signed out). */
  async getCanvas (id: string, options: { link?: string } = {}): Promise<CanvasJson> {
    if (options.link !== undefined) {
      return await this.request<CanvasJson>('GET', `/canvases/${seg(id)}`, { query: { link: options.link }, auth: false })
    }
    return await this.request<CanvasJson>('GET', `/canvases/${seg(id)}`)
  }

  /** Deletes a canvas (admins, the owner, its creator); open connections close with 4404. */
  async deleteCanvas (id: string): Promise<void> {
    await this.request<null>('DELETE', `/canvases/${seg(id)}`)
  }

  /** Who has the canvas open now, with cursor and selection. */
  async getPresence (id: string): Promise<PresenceResponse> {
    return await this.request<PresenceResponse>('GET', `/canvases/${seg(id)}/presence`)
  }

  // ---- versions ------------------------------------------------------------------------

  /** The canvas's versions. */
  async listVersions (canvasId: string): Promise<Version[]> {
    return (await this.request<{ versions: Version[] }>('GET', `/canvases/${seg(canvasId)}/versions`)).versions
  }

  /** Names the live document as a version (`changes`: 1 to 500 characters; editors and up). */
  async createVersion (canvasId: string, changes: string): Promise<Version> {
    return await this.request<Version>('POST', `/canvases/${seg(canvasId)}/versions`, { body: { changes } })
  }

  /** The canvas as it was at a version. */
  async getVersion (canvasId: string, version: number): Promise<CanvasJson> {
    return await this.request<CanvasJson>('GET', `/canvases/${seg(canvasId)}/versions/${version}`)
  }

  /** What changed from version `from` to version `to` (omitted: to the live canvas). */
  async diffVersions (canvasId: string, from: number, to?: number): Promise<VersionDiff> {
    return await this.request<VersionDiff>('GET', `/canvases/${seg(canvasId)}/versions/${from}/diff`, { query: { to } })
  }

  /**
   * Restores the whole canvas (not its sharing) to a version, as a new change by you: open
   * canvases see it live; answers the new version record and the canvas.
   */
  async restoreVersion (canvasId: string, version: number): Promise<RestoreResponse> {
    return await this.request<RestoreResponse>('POST', `/canvases/${seg(canvasId)}/versions/${version}/restore`)
  }

  /** Restores one block as it was at a version (re-created if deleted; 404 if the version has no such block). */
  async restoreBlock (canvasId: string, version: number, blockId: string): Promise<BlockRestoreResponse> {
    return await this.request<BlockRestoreResponse>('POST',
      `/canvases/${seg(canvasId)}/versions/${version}/blocks/${seg(blockId)}/restore`)
  }

  // ---- templates -----------------------------------------------------------------------

  /** The templates you can use. */
  async listTemplates (): Promise<Template[]> {
    return (await this.request<{ templates: Template[] }>('GET', '/templates')).templates
  }

  /** One template. */
  async getTemplate (id: string): Promise<Template> {
    return await this.request<Template>('GET', `/templates/${seg(id)}`)
  }

  /** Makes a template from a canvas's blocks. */
  async createTemplate (body: NewTemplate): Promise<Template> {
    return await this.request<Template>('POST', '/templates', { body })
  }

  // ---- sharing and favorites -----------------------------------------------------------

  /** The canvas's sharing settings. */
  async getSharing (canvasId: string): Promise<Sharing> {
    return await this.request<Sharing>('GET', `/canvases/${seg(canvasId)}/sharing`)
  }

  /** Changes visibility or embedding. */
  async updateSharing (canvasId: string, patch: SharingPatch): Promise<Sharing> {
    return await this.request<Sharing>('PATCH', `/canvases/${seg(canvasId)}/sharing`, { body: patch })
  }

  /** Grants a user a role on this canvas (or changes it); answers the new settings. */
  async setPermission (canvasId: string, userId: string, role: 'viewer' | 'editor' | 'admin'): Promise<Sharing> {
    return await this.request<Sharing>('PUT', `/canvases/${seg(canvasId)}/sharing/permissions/${seg(userId)}`, { body: { role } })
  }

  /** Removes a user's grant on this canvas; their open canvases lose it at once (4403 if nothing else lets them in). */
  async removePermission (canvasId: string, userId: string): Promise<void> {
    await this.request<unknown>('DELETE', `/canvases/${seg(canvasId)}/sharing/permissions/${seg(userId)}`)
  }

  /**
   * Creates (or replaces) the canvas's public read-only link and makes it `public`; answers
   * its token and paths. Open it without an account with
   * `CanvasClient.openCanvas(id, { link: token })` or `getCanvas(id, { link: token })`.
   */
  async createPublicLink (canvasId: string): Promise<PublicLink> {
    return await this.request<PublicLink>('POST', `/canvases/${seg(canvasId)}/sharing/public-link`)
  }

  /** Revokes the public link: canvases opened with it close with 4403; a `public` canvas becomes `private`. */
  async deletePublicLink (canvasId: string): Promise<void> {
    await this.request<unknown>('DELETE', `/canvases/${seg(canvasId)}/sharing/public-link`)
  }

  /** Marks a canvas as one of your favorites. */
  async favorite (canvasId: string): Promise<FavoriteState> {
    return await this.request<FavoriteState>('PUT', `/canvases/${seg(canvasId)}/favorite`)
  }

  /** Unmarks a favorite. */
  async unfavorite (canvasId: string): Promise<FavoriteState> {
    return await this.request<FavoriteState>('DELETE', `/canvases/${seg(canvasId)}/favorite`)
  }

  /** Your favorite canvases that you can still open, most recently marked first. */
  async listFavorites (): Promise<CanvasSummary[]> {
    return (await this.request<{ canvases: CanvasSummary[] }>('GET', '/favorites')).canvases
  }

  // ---- data sources (admins manage them; viewers read) ----------------------------------

  /** Creates a data source in a project (`file`, `database`, `api`, `streaming`). */
  async createDataSource (projectId: string, body: NewDataSource): Promise<DataSource> {
    return await this.request<DataSource>('POST', `/projects/${seg(projectId)}/data-sources`, { body })
  }

  /** A project's data sources, by name (secrets redacted). */
  async listDataSources (projectId: string): Promise<DataSource[]> {
    return (await this.request<{ data_sources: DataSource[] }>('GET', `/projects/${seg(projectId)}/data-sources`)).data_sources
  }

  /** One data source. */
  async getDataSource (id: string): Promise<DataSource> {
    return await this.request<DataSource>('GET', `/data-sources/${seg(id)}`)
  }

  /** Renames or reconfigures a source (secrets sent back redacted keep their value). */
  async updateDataSource (id: string, patch: DataSourcePatch): Promise<DataSource> {
    return await this.request<DataSource>('PATCH', `/data-sources/${seg(id)}`, { body: patch })
  }

  /**
   * Uploads a `file` source's file (CSV by default; Parquet, NDJSON by `contentType`).
   * Answers the source with its new `schema_info`; a malformed file is a 400 naming the line
   * (`malformed_data`) and keeps the old file. Bound blocks of the project are computed again.
   */
  async uploadFile (id: string, data: string | Uint8Array | Blob | ArrayBuffer, contentType: UploadContentType = 'text/csv'): Promise<DataSource> {
    return await this.request<DataSource>('PUT', `/data-sources/${seg(id)}/file`, { raw: { data, contentType } })
  }

  /** Reads the source again (an `api` source fetches its endpoint): `status` `active` or `error`. */
  async syncDataSource (id: string): Promise<DataSource> {
    return await this.request<DataSource>('POST', `/data-sources/${seg(id)}/sync`)
  }

  /** Deletes a source (409 while a query runs on it or a pipeline uses it). */
  async deleteDataSource (id: string): Promise<void> {
    await this.request<null>('DELETE', `/data-sources/${seg(id)}`)
  }

  // ---- saved queries and executions ----------------------------------------------------

  /** Saves a query (editors); parameters declared `{min: {type: 'number', default: 0}}`, written `{{min}}`. */
  async createQuery (projectId: string, body: NewQuery): Promise<SavedQuery> {
    return await this.request<SavedQuery>('POST', `/projects/${seg(projectId)}/queries`, { body })
  }

  /** A project's saved queries, newest first. */
  async listQueries (projectId: string): Promise<SavedQuery[]> {
    return (await this.request<{ queries: SavedQuery[] }>('GET', `/projects/${seg(projectId)}/queries`)).queries
  }

  /** One saved query. */
  async getQuery (id: string): Promise<SavedQuery> {
    return await this.request<SavedQuery>('GET', `/queries/${seg(id)}`)
  }

  /** Changes a saved query (editors). */
  async updateQuery (id: string, patch: QueryPatch): Promise<SavedQuery> {
    return await this.request<SavedQuery>('PATCH', `/queries/${seg(id)}`, { body: patch })
  }

  /** Deletes a saved query with its executions (editors). */
  async deleteQuery (id: string): Promise<void> {
    await this.request<null>('DELETE', `/queries/${seg(id)}`)
  }

  /**
   * Runs a saved query with `parameters` (`fresh: true` skips the result cache). Answers
   * `{execution, result}` when the result is at hand, else `{execution}` (still running):
   * poll {@link getExecution} and read {@link executionResult}.
   */
  async executeQuery (id: string, options: { parameters?: Record<string, unknown>, fresh?: boolean } = {}): Promise<ExecuteResponse> {
    const body: { parameters?: Record<string, unknown>, fresh?: boolean } = {}
    if (options.parameters !== undefined) body.parameters = options.parameters
    if (options.fresh !== undefined) body.fresh = options.fresh
    return await this.request<ExecuteResponse>('POST', `/queries/${seg(id)}/execute`, { body })
  }

  /** An execution record (with `progress` while it runs). */
  async getExecution (id: string): Promise<Execution> {
    return await this.request<Execution>('GET', `/executions/${seg(id)}`)
  }

  /** Rows `offset..offset + limit` of a completed execution's result (409 while running or failed; 404 once it left the cache). */
  async executionResult (id: string, page: { offset?: number, limit?: number } = {}): Promise<ExecutionResult> {
    return await this.request<ExecutionResult>('GET', `/executions/${seg(id)}/result`, { query: { offset: page.offset, limit: page.limit } })
  }

  /** Cancels a running execution (who ran it, or an editor); answers the record, now `cancelled`. */
  async cancelExecution (id: string): Promise<Execution> {
    return await this.request<Execution>('POST', `/executions/${seg(id)}/cancel`)
  }

  // ---- pipelines (admins) --------------------------------------------------------------

  /** Creates a pipeline re-syncing `source_id` on a cron schedule (UTC). */
  async createPipeline (projectId: string, body: NewPipeline): Promise<Pipeline> {
    return await this.request<Pipeline>('POST', `/projects/${seg(projectId)}/pipelines`, { body })
  }

  /** A project's pipelines. */
  async listPipelines (projectId: string): Promise<Pipeline[]> {
    return (await this.request<{ pipelines: Pipeline[] }>('GET', `/projects/${seg(projectId)}/pipelines`)).pipelines
  }

  /** One pipeline. */
  async getPipeline (id: string): Promise<Pipeline> {
    return await this.request<Pipeline>('GET', `/pipelines/${seg(id)}`)
  }

  /** Changes a pipeline (a new schedule or turning it on sets `next_run_at`). */
  async updatePipeline (id: string, patch: PipelinePatch): Promise<Pipeline> {
    return await this.request<Pipeline>('PATCH', `/pipelines/${seg(id)}`, { body: patch })
  }

  /** Deletes a pipeline. */
  async deletePipeline (id: string): Promise<void> {
    await this.request<null>('DELETE', `/pipelines/${seg(id)}`)
  }

  /** Runs a pipeline now (its schedule is unchanged). */
  async runPipeline (id: string): Promise<PipelineRun> {
    return await this.request<PipelineRun>('POST', `/pipelines/${seg(id)}/run`)
  }

  // ---- blocks bound to live data -------------------------------------------------------

  /**
   * A bound block's data over REST (anyone who can read the canvas): a chart with its
   * `series`, a table one page (`page` from 1, `sort` `field` / `-field`, `filter` `text`
   * or `column:text`).
   */
  async blockData (canvasId: string, blockId: string, request: BlockDataRequest = {}): Promise<BlockDataPage> {
    return await this.request<BlockDataPage>('GET', `/canvases/${seg(canvasId)}/blocks/${seg(blockId)}/data`, {
      query: { page: request.page, sort: request.sort, filter: request.filter }
    })
  }

  /**
   * Runs a bound block's query again past the result cache (editors and up); every
   * connection of the canvas receives the new data (message 102). Answers that data.
   */
  async refreshBlock (canvasId: string, blockId: string): Promise<BlockData> {
    return await this.request<BlockData>('POST', `/canvases/${seg(canvasId)}/blocks/${seg(blockId)}/refresh`)
  }

  /** Server health (`GET /healthz`). */
  async health (): Promise<Health> {
    return await this.request<Health>('GET', '/healthz', { auth: false })
  }
}
