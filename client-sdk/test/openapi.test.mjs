// The SDK's REST types (src/types.ts) against the server's OpenAPI document
// (GET /api/v1/openapi.json of the real canvas-server binary), so that neither drifts:
// each exported interface is paired with the schema it describes (or listed as having
// none), and for each pair the property names, their required-ness, nullability and
// primitive types (string, number, boolean, array, object) must agree (for request bodies:
// what the SDK sends must be what the server accepts; it may send less). Nested objects are
// compared through their own pairs. The types are read with the TypeScript compiler's
// checker (inherited and mapped properties included), not by parsing text.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import ts from 'typescript'
import { startServer, removeDataDir, workspaceRoot } from './lib/server.mjs'

/** SDK type -> schema in `components.schemas`. */
const PAIRS = {
  User: 'User',
  AuthResponse: 'AuthSession',
  Project: 'ProjectView',
  ProjectPatch: 'UpdateProject',
  Member: 'Member',
  CanvasSummary: 'CanvasRecord',
  NewCanvas: 'CreateCanvas',
  BlockJson: 'BlockView',
  CanvasJson: 'CanvasDocument',
  PresenceEntry: 'PresenceEntry',
  PresenceResponse: 'Presence',
  Version: 'VersionRecord',
  VersionDiff: 'VersionDiffView',
  RestoreResponse: 'Restored',
  BlockRestoreResponse: 'BlockRestored',
  Template: 'Template',
  NewTemplate: 'CreateTemplate',
  Sharing: 'SharingSettings',
  PublicLink: 'PublicLinkCreated',
  FavoriteState: 'FavoriteState',
  Interactions: 'Interactions',
  SharingPatch: 'PatchSharing',
  Health: 'Health',
  DataSource: 'DataSourceView',
  NewDataSource: 'CreateSource',
  DataSourcePatch: 'PatchSource',
  SavedQuery: 'SavedQuery',
  NewQuery: 'CreateQuery',
  QueryPatch: 'PatchQuery',
  Execution: 'ExecutionView',
  ExecuteResponse: 'Executed',
  ExecutionResult: 'ExecutionResult',
  Pipeline: 'PipelineView',
  NewPipeline: 'CreatePipeline',
  PipelinePatch: 'PatchPipeline',
  PipelineRun: 'PipelineRun',
  BlockDataPage: 'BlockData'
}

/** SDK types that are request bodies: the SDK may send less than the document allows. */
const REQUESTS = new Set(['ProjectPatch', 'NewCanvas', 'NewTemplate', 'SharingPatch', 'NewDataSource',
  'DataSourcePatch', 'NewQuery', 'QueryPatch', 'NewPipeline', 'PipelinePatch'])

/**
 * Exported types of types.ts with no schema of their own, and why. A new exported type must
 * be paired above or listed here.
 */
const UNPAIRED = {
  Role: 'a string union (the roles)',
  NewMember: 'a union of two shapes; checked below against AddMember',
  VersionHistoryEntry: 'an entry of the free-form `metadata.version_history` of CanvasJson',
  VersionKind: 'a string union (VersionRecord.kind)',
  DataSourceType: 'a string union (DataSource.type)',
  SchemaColumn: 'inside the free-form `schema_info` of a data source',
  SchemaTable: 'inside the free-form `schema_info` of a data source',
  UploadContentType: 'the media types of PUT /data-sources/{id}/file',
  QueryParameter: 'inside the free-form `parameters` of a saved query',
  ExecutionStatus: 'a string union (Execution.status)',
  ResultColumn: 'an entry of the free-form `columns` of a result',
  Truncation: 'a string union (truncated)',
  SeriesPoint: 'inside the free-form `series` of BlockData',
  ChartSeries: 'inside the free-form `series` of BlockData',
  TablePageColumn: 'an entry of the free-form `columns` of BlockData',
  BlockDataRequest: 'the query parameters of GET .../blocks/{block_id}/data; checked below',
  BlockData: 'the body of message 102 (WebSocket); its REST answer is BlockDataPage'
}

/**
 * Where the SDK type says more than the schema can: `property` of `type` is known to the
 * SDK only, with the reason. Keep this short; each entry is a place the document is vaguer.
 */
const SDK_ONLY = {
  // message 102 over the WebSocket carries `error`; the REST answer is an error instead
  'BlockDataPage.error': 'only in message 102 (WebSocket); REST answers an error status'
}

/**
 * Response properties the SDK declares optional though the document says they are always
 * there, and why (the SDK type serves more than this answer).
 */
const SDK_OPTIONAL = {
  'BlockJson.metadata': "BlockJson also types a template's blocks, which have no metadata"
}

let server
let doc

before(async () => {
  server = await startServer()
  const response = await fetch(`${server.url}/api/v1/openapi.json`)
  assert.equal(response.status, 200)
  doc = await response.json()
})

after(async () => {
  await server?.stop()
  if (server) removeDataDir(server.dataDir)
})

// ---- the document's side --------------------------------------------------------------------

function deref (schema) {
  while (schema && schema.$ref) {
    const name = schema.$ref.replace('#/components/schemas/', '')
    schema = doc.components.schemas[name]
    assert.ok(schema, `unresolved ${name}`)
  }
  return schema
}

/** `{properties, required}` of an object schema, with `allOf` (flattened structs) merged. */
function objectOf (schema) {
  schema = deref(schema)
  const out = { properties: {}, required: new Set() }
  for (const part of schema.allOf ?? []) {
    const sub = objectOf(part)
    Object.assign(out.properties, sub.properties)
    for (const r of sub.required) out.required.add(r)
  }
  Object.assign(out.properties, schema.properties ?? {})
  for (const r of schema.required ?? []) out.required.add(r)
  return out
}

/** `{kinds: Set('string'|'number'|'boolean'|'array'|'object'|'any'), nullable}` of a schema. */
function schemaKind (schema) {
  const kinds = new Set()
  let nullable = false
  const visit = (s) => {
    if (s.$ref) return visit(deref(s))
    const alternatives = s.oneOf ?? s.anyOf
    if (alternatives) return alternatives.forEach(visit)
    if (s.allOf) return kinds.add('object')
    const types = s.type === undefined ? [] : [s.type].flat()
    if (types.length === 0) {
      if (s.properties || s.additionalProperties) kinds.add('object')
      else kinds.add('any')
    }
    for (const t of types) {
      if (t === 'null') nullable = true
      else if (t === 'integer' || t === 'number') kinds.add('number')
      else kinds.add(t)
    }
  }
  visit(schema)
  return { kinds, nullable }
}

// ---- the SDK's side -------------------------------------------------------------------------

let checker
let exported

function loadSdkTypes () {
  const file = join(workspaceRoot, 'client-sdk/src/types.ts')
  const program = ts.createProgram([file], { strict: true, target: ts.ScriptTarget.ES2022, noEmit: true })
  checker = program.getTypeChecker()
  const source = program.getSourceFile(file)
  exported = new Map()
  for (const symbol of checker.getExportsOfModule(checker.getSymbolAtLocation(source))) {
    exported.set(symbol.getName(), checker.getDeclaredTypeOfSymbol(symbol))
  }
}

/** `{kinds, nullable}` of a TypeScript type, in the schema's vocabulary. */
function tsKind (type) {
  const kinds = new Set()
  let nullable = false
  const visit = (t) => {
    if (t.flags & ts.TypeFlags.Null) { nullable = true; return }
    if (t.flags & ts.TypeFlags.Undefined) return
    if (t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) { kinds.add('any'); return }
    if (t.flags & ts.TypeFlags.StringLike) { kinds.add('string'); return }
    if (t.flags & ts.TypeFlags.NumberLike) { kinds.add('number'); return }
    if (t.flags & ts.TypeFlags.BooleanLike) { kinds.add('boolean'); return }
    if (t.isUnion()) { t.types.forEach(visit); return }
    if (t.isIntersection()) {
      // `string & {}` (an open string union) is a string
      const primitive = t.types.find((m) => m.flags & (ts.TypeFlags.StringLike | ts.TypeFlags.NumberLike))
      if (primitive) { visit(primitive); return }
      kinds.add('object')
      return
    }
    if (checker.isArrayType(t) || checker.isTupleType(t)) { kinds.add('array'); return }
    kinds.add('object')
  }
  visit(type)
  return { kinds, nullable }
}

/** The properties of an SDK type: name -> {optional, kind}. */
function tsProperties (type) {
  const out = {}
  for (const prop of checker.getPropertiesOfType(type)) {
    const declaration = prop.valueDeclaration ?? prop.declarations?.[0]
    const propType = checker.getTypeOfSymbolAtLocation(prop, declaration)
    out[prop.getName()] = {
      optional: (prop.flags & ts.SymbolFlags.Optional) !== 0,
      ...tsKind(propType)
    }
  }
  return out
}

function same (a, b) {
  return a.size === b.size && [...a].every((x) => b.has(x))
}

/** The differences between an SDK type and a schema, as sentences. */
function compare (typeName, type, schemaName) {
  const problems = []
  const sdk = tsProperties(type)
  const { properties, required } = objectOf(doc.components.schemas[schemaName])
  for (const name of Object.keys(sdk)) {
    if (!(name in properties) && !SDK_ONLY[`${typeName}.${name}`]) {
      problems.push(`${typeName}.${name} is not a property of ${schemaName}`)
    }
  }
  for (const name of Object.keys(properties)) {
    if (!(name in sdk)) problems.push(`${schemaName}.${name} is missing from ${typeName}`)
  }
  const request = REQUESTS.has(typeName)
  for (const [name, t] of Object.entries(sdk)) {
    const schema = properties[name]
    if (!schema) continue
    const where = `${typeName}.${name} vs ${schemaName}.${name}`
    const s = schemaKind(schema)
    const requiredness = `${t.optional ? 'optional' : 'required'} in the SDK, ${required.has(name) ? 'required' : 'optional'} in the document`
    const nullability = `${t.nullable ? '' : 'not '}nullable in the SDK, ${s.nullable ? '' : 'not '}nullable in the document`
    if (request) {
      // what the SDK sends must be accepted: it may always send a field the server
      // requires, and never null where the server takes none
      if (t.optional && required.has(name)) problems.push(`${where}: ${requiredness}`)
      if (t.nullable && !s.nullable) problems.push(`${where}: ${nullability}`)
    } else {
      // what the server answers must fit the SDK's type, and the SDK must not promise more
      const looser = t.optional && required.has(name) && SDK_OPTIONAL[`${typeName}.${name}`]
      if (t.optional === required.has(name) && !looser) problems.push(`${where}: ${requiredness}`)
      if (t.nullable !== s.nullable) problems.push(`${where}: ${nullability}`)
    }
    if (!t.kinds.has('any') && !s.kinds.has('any') && !same(t.kinds, s.kinds)) {
      problems.push(`${where}: ${[...t.kinds]} in the SDK, ${[...s.kinds]} in the document`)
    }
  }
  return problems
}

// ---- the tests ------------------------------------------------------------------------------

test('every exported type of src/types.ts is paired with a schema or listed as unpaired', () => {
  loadSdkTypes()
  const unknown = [...exported.keys()].filter((name) => !(name in PAIRS) && !(name in UNPAIRED))
  assert.deepEqual(unknown, [], 'pair these with a schema in PAIRS, or list them in UNPAIRED with the reason')
  for (const name of [...Object.keys(PAIRS), ...Object.keys(UNPAIRED)]) {
    assert.ok(exported.has(name), `${name} is no longer exported by src/types.ts`)
  }
  for (const schema of Object.values(PAIRS)) {
    assert.ok(doc.components.schemas[schema], `the document has no schema ${schema}`)
  }
})

test('each SDK type has the properties, required-ness, nullability and types of its schema', () => {
  loadSdkTypes()
  const problems = []
  for (const [typeName, schemaName] of Object.entries(PAIRS)) {
    problems.push(...compare(typeName, exported.get(typeName), schemaName))
  }
  assert.deepEqual(problems, [])
})

test('NewMember is AddMember with exactly one of email or user_id', () => {
  loadSdkTypes()
  const { properties, required } = objectOf(doc.components.schemas.AddMember)
  const union = exported.get('NewMember')
  assert.ok(union.isUnion())
  const names = new Set()
  for (const member of union.types) {
    const props = tsProperties(member)
    for (const name of Object.keys(props)) {
      names.add(name)
      assert.ok(name in properties, `NewMember.${name} is not in AddMember`)
    }
    assert.ok(props.role && !props.role.optional)
  }
  assert.deepEqual([...names].sort(), Object.keys(properties).sort())
  assert.deepEqual([...required], ['role'])
})

test('BlockDataRequest is the query of GET /canvases/{id}/blocks/{block_id}/data', () => {
  loadSdkTypes()
  const op = doc.paths['/api/v1/canvases/{id}/blocks/{block_id}/data'].get
  const query = Object.fromEntries(op.parameters.filter((p) => p.in === 'query').map((p) => [p.name, p]))
  const sdk = tsProperties(exported.get('BlockDataRequest'))
  assert.deepEqual(Object.keys(sdk).sort(), Object.keys(query).sort())
  for (const [name, t] of Object.entries(sdk)) {
    assert.equal(t.optional, !query[name].required, name)
    const s = schemaKind(query[name].schema)
    assert.ok(same(t.kinds, s.kinds), `${name}: ${[...t.kinds]} vs ${[...s.kinds]}`)
  }
})
