import { createHash } from 'node:crypto'
import type { PoolClient } from 'pg'
import { InvalidArgument } from '../../errors/index.js'

/**
 * Schema names are the only identifiers that vary, and they are spliced into SQL text (DDL and
 * table references cannot be parameters): so they are held to lowercase letters, digits and `_`,
 * at most 63 bytes (Postgres' identifier limit), and always double-quoted on top of that.
 */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

/** The schema's tables, each already quoted: `"dataspace"."records"`. */
export interface SchemaTables {
  readonly schema: string
  readonly records: string
  readonly revision: string
  readonly changes: string
  readonly kinds: string
  readonly sessions: string
  readonly answers: string
  readonly feed: string
  readonly nodes: string
  readonly batches: string
  readonly migrations: string
  readonly ensureFieldIndexes: string
  readonly writeBatch: string
  readonly trimFeed: string
}

/** Checks a schema name and returns the quoted names of its tables. */
export function schemaTables(schema: string): SchemaTables {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new InvalidArgument(
      `postgres backend: schema ${JSON.stringify(schema)} must match ${String(SCHEMA_NAME)}`,
    )
  }
  const q = (name: string): string => `"${schema}"."${name}"`
  return Object.freeze({
    schema: `"${schema}"`,
    records: q('records'),
    revision: q('revision'),
    changes: q('changes'),
    kinds: q('kinds'),
    sessions: q('sessions'),
    answers: q('answers'),
    feed: q('feed'),
    nodes: q('nodes'),
    batches: q('batches'),
    migrations: q('migrations'),
    ensureFieldIndexes: q('ensure_field_indexes'),
    writeBatch: q('write_batch'),
    trimFeed: q('trim_feed'),
  })
}

/** The GIN index over every record's labels. */
export const LABELS_INDEX = 'ds_records_labels'
/** The primary key's index: `(kind, id)`, which also serves id prefixes and keyset pages. */
export const PRIMARY_INDEX = 'ds_records_pkey'

/**
 * The names of the two indexes a declared field gets: a btree on the text at the path (scalar
 * equality) and a GIN (`jsonb_path_ops`) on the JSON at the path (array elements, through `@>`).
 * Deterministic, so that declaring a kind again finds its indexes; readable, with a hash so that
 * slugs that collide (`a.b` and `a_b`) still differ, and within 63 bytes.
 */
export function fieldIndexNames(kind: string, path: string): { btree: string; gin: string } {
  const slug = `${kind}_${path}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 40)
  const hash = createHash('sha256').update(`${kind}\0${path}`).digest('hex').slice(0, 10)
  return { btree: `ds_f_${slug}_${hash}`, gin: `ds_fa_${slug}_${hash}` }
}

/**
 * The SQLSTATE `write_batch` raises when a batch's first revision does not follow the stored one
 * (a second writer, a gap, a replay); its DETAIL is the stored revision.
 */
export const REVISION_CONFLICT = 'DS409'

type Migration = (t: SchemaTables, schemaName: string) => readonly string[]

/**
 * Versioned migrations: entry `i` brings the schema from version `i` to `i + 1`. Append only;
 * never edit one that has shipped.
 */
const MIGRATIONS: readonly Migration[] = [
  (t, schemaName) => [
    // One row, locked by every write: the lock makes revision order equal commit order.
    `CREATE TABLE ${t.revision} (
       id boolean PRIMARY KEY DEFAULT true CHECK (id),
       revision bigint NOT NULL)`,
    `INSERT INTO ${t.revision} (id, revision) VALUES (true, 0)`,
    // Ids sort bytewise (COLLATE "C"): keyset pages and prefix ranges must not depend on locale.
    `CREATE TABLE ${t.records} (
       kind text NOT NULL,
       id text COLLATE "C" NOT NULL,
       data jsonb NOT NULL,
       labels jsonb NOT NULL DEFAULT '{}',
       owner text,
       revision bigint NOT NULL,
       created_revision bigint NOT NULL,
       expires_at timestamptz,
       CONSTRAINT ${PRIMARY_INDEX} PRIMARY KEY (kind, id))`,
    `CREATE INDEX ${LABELS_INDEX} ON ${t.records} USING gin (labels)`,
    `CREATE INDEX ds_records_owner ON ${t.records} (owner) WHERE owner IS NOT NULL`,
    `CREATE TABLE ${t.changes} (
       revision bigint NOT NULL,
       seq integer NOT NULL,
       kind text NOT NULL,
       id text COLLATE "C" NOT NULL,
       after jsonb,
       CONSTRAINT ds_changes_pkey PRIMARY KEY (revision, seq))`,
    `CREATE TABLE ${t.kinds} (
       kind text PRIMARY KEY,
       fields jsonb,
       indexes jsonb NOT NULL)`,
    `CREATE TABLE ${t.sessions} (
       id text PRIMARY KEY,
       resume_token_hash text NOT NULL,
       pid text NOT NULL,
       name text NOT NULL,
       ttl double precision NOT NULL,
       children jsonb NOT NULL,
       last_child integer NOT NULL,
       principal text,
       expires_at timestamptz NOT NULL)`,
    // Index DDL cannot take parameters, so the kind and path reach it through format()'s %L and
    // %I inside Postgres: no value is ever spliced into SQL text on our side.
    `CREATE FUNCTION ${t.ensureFieldIndexes}(p_kind text, p_path text[], p_btree text, p_gin text)
     RETURNS void LANGUAGE plpgsql AS $fn$
     BEGIN
       EXECUTE format(
         'CREATE INDEX IF NOT EXISTS %I ON %I.records ((data #>> %L::text[])) WHERE kind = %L',
         p_btree, ${literal(schemaName)}, p_path, p_kind);
       EXECUTE format(
         'CREATE INDEX IF NOT EXISTS %I ON %I.records USING gin ((data #> %L::text[]) jsonb_path_ops) WHERE kind = %L',
         p_gin, ${literal(schemaName)}, p_path, p_kind);
     END
     $fn$`,
  ],
  // The id of the last batch written, beside the revision it ended at: a retry of that batch
  // (its COMMIT went through but the answer was lost) is recognised and not refused.
  (t) => [`ALTER TABLE ${t.revision} ADD COLUMN last_batch text NOT NULL DEFAULT ''`],
  // A whole batch in one statement, so one round trip (see writeBatchFunction).
  (t) => [writeBatchFunction(t, 'CREATE', KINDS_UPSERT_V3, {})],
  // Residency (docs/backends.md, "Non-resident kinds"): a non-resident kind's records are not loaded at open. The batch
  // function is replaced to store the flag; the owner index serves the per-owner counts.
  (t) => [
    `ALTER TABLE ${t.kinds} ADD COLUMN resident boolean NOT NULL DEFAULT true`,
    `CREATE INDEX ds_records_kind_owner ON ${t.records} (kind, owner) WHERE owner IS NOT NULL`,
    writeBatchFunction(t, 'CREATE OR REPLACE', KINDS_UPSERT_V4, {}),
  ],
  // Answers of sessions' write calls, stored in the transaction of the commit each answers
  // (docs/backends.md, "Answers"); the batch function takes them as two more arguments.
  (t) => [
    `CREATE TABLE ${t.answers} (
       session text NOT NULL,
       call bigint NOT NULL,
       revision bigint NOT NULL,
       value text NOT NULL,
       PRIMARY KEY (session, call))`,
    `DROP FUNCTION ${t.writeBatch}(text, bigint, bigint, jsonb, jsonb, jsonb, jsonb, jsonb, text[])`,
    writeBatchFunction(t, 'CREATE', KINDS_UPSERT_V4, { answers: true }),
  ],
  // The bounded feed (docs/backends.md, "The feed"): each change row keeps when it was written
  // (trimming by age; now() is stable, so existing rows get the migration's time without a
  // rewrite), and the floor lives in a row of its own so that trimming never waits on, or
  // holds, the revision row every write locks.
  (t) => [
    `ALTER TABLE ${t.changes} ADD COLUMN committed_at timestamptz NOT NULL DEFAULT now()`,
    `CREATE TABLE ${t.feed} (
       id boolean PRIMARY KEY DEFAULT true CHECK (id),
       floor bigint NOT NULL)`,
    `INSERT INTO ${t.feed} (id, floor) VALUES (true, 0)`,
    trimFeedFunction(t),
  ],
  // Node membership (docs/cluster.md, "Membership"): one row per running server, its times on
  // the database clock (membership.ts). Rows of nodes that died are pruned by the live ones.
  (t) => [
    `CREATE TABLE ${t.nodes} (
       id text PRIMARY KEY,
       address text NOT NULL,
       host text NOT NULL,
       pid integer NOT NULL,
       heartbeat_ms integer NOT NULL,
       started_at timestamptz NOT NULL DEFAULT now(),
       heartbeat_at timestamptz NOT NULL DEFAULT now())`,
  ],
  // Why a record was removed (docs/backends.md, "The feed"): a follower's watchers must see the
  // writer's `retract` reasons. NULL for upserts and for removals stored before this.
  (t) => [
    `ALTER TABLE ${t.changes} ADD COLUMN reason text`,
    writeBatchFunction(t, 'CREATE OR REPLACE', KINDS_UPSERT_V4, { answers: true, reasons: true }),
  ],
  // The last batch each writer run stored (WriteBatch.id: `<run>-<n>`; a run writes one batch
  // at a time and only ever retries its newest). A retry of a batch whose COMMIT went through
  // but whose answer was lost is recognised by it even after other cluster nodes wrote
  // (`last_batch` then names theirs), whether or not its commits had changes and whether or not
  // they are still in the feed: without it, the retry would be refused as a conflict and its
  // writers told "not applied" for a stored write. One row per run, so it grows by one row per
  // server start; pruning the rows of runs long gone (by `at`) is left for later.
  (t) => [
    `CREATE TABLE ${t.batches} (
       run text PRIMARY KEY,
       batch text NOT NULL,
       last bigint NOT NULL,
       at timestamptz NOT NULL DEFAULT now())`,
    writeBatchFunction(t, 'CREATE OR REPLACE', KINDS_UPSERT_V4, {
      answers: true,
      reasons: true,
      batches: true,
    }),
  ],
  // Sessions in the store (docs/cluster.md, "Sessions in the store"): a cluster node's session
  // rows name the node that holds them, and `expires_at` is their lease on the database clock
  // (renewed by the node, reaped by any node once it ran out: the index serves the reapers;
  // `reap_at` is a reaper's claim, so that nodes reaping at once do not reap the same session).
  // The batch function takes the writing node, the commits fenced on a session's lease and the
  // commits that end sessions; a single server passes none and writes as before.
  (t) => [
    `ALTER TABLE ${t.sessions} ADD COLUMN node text, ADD COLUMN reap_at timestamptz`,
    `CREATE INDEX ds_sessions_expires ON ${t.sessions} (expires_at)`,
    `DROP FUNCTION ${t.writeBatch}(text, bigint, bigint, jsonb, jsonb, jsonb, jsonb, jsonb, text[],
       jsonb, jsonb)`,
    writeBatchFunction(t, 'CREATE', KINDS_UPSERT_V4, {
      answers: true,
      reasons: true,
      batches: true,
      leases: true,
    }),
  ],
]

/**
 * The SQLSTATE `write_batch` raises (from migration 10) for a commit whose session is no longer
 * held by the writing node, or that ends a session whose lease is live; its DETAIL is the
 * commit's revision. The backend reports it as `ProcessExited`, and the runtime refuses that
 * commit alone (docs/cluster.md, "Sessions in the store").
 */
export const SESSION_LOST = 'DS410'

/**
 * One bounded trim of the feed, in one transaction (the function call is its own): the floor
 * rises to the highest revision that is more than `p_keep` behind the head or whose rows are
 * older than `p_retention_ms` (NULL turns a bound off), but past at most `p_max_rows` rows
 * (whole commits: a commit is never split). The DELETE and the new floor commit together, so a
 * reader sees both or neither. The feed row's lock serialises trims; writers never wait on it,
 * and a trim never locks the revision row (it only reads the head). Returns the floor, the rows
 * deleted and whether more is left to trim.
 */
function trimFeedFunction(t: SchemaTables): string {
  return `CREATE FUNCTION ${t.trimFeed}(p_keep bigint, p_retention_ms float8, p_max_rows int,
       OUT floor bigint, OUT deleted bigint, OUT done boolean)
     LANGUAGE plpgsql AS $fn$
     DECLARE
       v_floor bigint;
       v_head bigint;
       v_target bigint;
       v_old bigint;
       v_rows bigint;
       v_all_old boolean;
       v_cap bigint;
     BEGIN
       SELECT f.floor INTO v_floor FROM ${t.feed} f FOR UPDATE;
       SELECT r.revision INTO v_head FROM ${t.revision} r;
       v_target := v_floor;
       IF p_keep IS NOT NULL THEN
         v_target := greatest(v_target, v_head - p_keep);
       END IF;
       done := true;
       deleted := 0;
       IF p_retention_ms IS NOT NULL THEN
         -- Revisions follow commit order and their times nearly so: the newest old row among
         -- the next p_max_rows ends the old prefix. A window of old rows only may have more after.
         SELECT max(c.revision) FILTER (WHERE c.old), count(*), bool_and(c.old)
         INTO v_old, v_rows, v_all_old FROM (
           SELECT revision,
             committed_at < now() - p_retention_ms * interval '1 millisecond' AS old
           FROM ${t.changes} WHERE revision > v_floor
           ORDER BY revision, seq LIMIT p_max_rows) c;
         v_target := greatest(v_target, v_old);
         IF v_rows = p_max_rows AND v_all_old THEN
           done := false;
         END IF;
       END IF;
       IF v_target > v_floor THEN
         -- The revision of the p_max_rows-th row: the bound of one trim's DELETE.
         SELECT c.revision INTO v_cap FROM ${t.changes} c WHERE c.revision > v_floor
         ORDER BY c.revision, c.seq OFFSET p_max_rows - 1 LIMIT 1;
         IF v_cap IS NOT NULL AND v_cap < v_target THEN
           v_target := v_cap;
           done := false;
         END IF;
         DELETE FROM ${t.changes} WHERE revision > v_floor AND revision <= v_target;
         GET DIAGNOSTICS deleted = ROW_COUNT;
         UPDATE ${t.feed} SET floor = v_target;
       END IF;
       floor := v_target;
     END
     $fn$`
}

/** How `write_batch` stores a kind declaration (`v_kind` is one element of `p_kinds`). */
type KindsUpsert = (t: SchemaTables) => string

const KINDS_UPSERT_V3: KindsUpsert = (t) =>
  `INSERT INTO ${t.kinds} (kind, fields, indexes)
           VALUES (v_kind->>'kind', v_kind->'fields', v_kind->'indexes')
           ON CONFLICT (kind) DO UPDATE SET fields = excluded.fields, indexes = excluded.indexes;`

const KINDS_UPSERT_V4: KindsUpsert = (t) =>
  `INSERT INTO ${t.kinds} (kind, fields, indexes, resident)
           VALUES (v_kind->>'kind', v_kind->'fields', v_kind->'indexes',
             coalesce((v_kind->>'resident')::boolean, true))
           ON CONFLICT (kind) DO UPDATE SET fields = excluded.fields, indexes = excluded.indexes,
             resident = excluded.resident;`

/**
 * A whole batch in one statement, so one round trip: called outside BEGIN/COMMIT it is its own
 * transaction, and any error (the revision check included) rolls all of it back. The row lock
 * on the counter still orders every writer. Arguments are JSON (or NULL when there is none):
 * deletes [{kind, id}], upserts [records as rows], feed [{revision, seq, kind, id, after,
 * reason?}] (`reason` is stored from migration 8: `reasons`),
 * kinds [{kind, fields?, indexes, resident?, ensure: [{path, btree, gin}]}], session rows, and ids.
 * From migration 9 (`batches`), the batch's run (its id up to the last `-`) keeps the batch and
 * its last revision, and a batch at an old revision that its run stored is a retry (`false`).
 * Migrations keep their text: only the kinds upsert differs between versions.
 */
function writeBatchFunction(
  t: SchemaTables,
  create: 'CREATE' | 'CREATE OR REPLACE',
  kindsUpsert: KindsUpsert,
  version: {
    readonly answers?: boolean
    readonly reasons?: boolean
    readonly batches?: boolean
    readonly leases?: boolean
  },
): string {
  const { answers = false, reasons = false, batches = false, leases = false } = version
  return `${create} FUNCTION ${t.writeBatch}(p_batch text, p_first bigint, p_last bigint,
       p_deletes jsonb, p_upserts jsonb, p_feed jsonb,
       p_kinds jsonb, p_session_puts jsonb, p_session_deletes text[]${answers ? ANSWER_ARGS : ''}${
         leases ? LEASE_ARGS : ''
       })
     RETURNS boolean LANGUAGE plpgsql AS $fn$
     DECLARE
       v_revision bigint;
       v_last_batch text;${batches ? RUN_DECLARATION : ''}${leases ? LEASE_DECLARATIONS : ''}
       v_kind jsonb;
       v_index jsonb;
     BEGIN
       IF p_first IS NOT NULL THEN
         SELECT revision, last_batch INTO v_revision, v_last_batch FROM ${t.revision} FOR UPDATE;
         -- The same batch again, already stored: its answer was lost. Nothing to do.
         IF v_last_batch = p_batch AND v_revision = p_last THEN
           RETURN false;
         END IF;
         IF p_first <> v_revision + 1 THEN${
           batches
             ? `
           -- Stored already, and other batches since: its answer was lost. Nothing to do.
           IF EXISTS (SELECT 1 FROM ${t.batches}
               WHERE run = v_run AND batch = p_batch AND last = p_last) THEN
             RETURN false;
           END IF;`
             : ''
         }
           RAISE EXCEPTION 'commit % does not follow the stored revision %', p_first, v_revision
             USING ERRCODE = '${REVISION_CONFLICT}', DETAIL = v_revision::text;
         END IF;
         IF p_deletes IS NOT NULL THEN
           DELETE FROM ${t.records} r USING jsonb_to_recordset(p_deletes) AS d(kind text, id text)
           WHERE r.kind = d.kind AND r.id = d.id;
         END IF;
         IF p_upserts IS NOT NULL THEN
           INSERT INTO ${t.records}
             (kind, id, data, labels, owner, revision, created_revision, expires_at)
           -- jsonb_to_recordset reads a JSON null as SQL NULL; record data may be JSON null.
           SELECT r.kind, r.id, coalesce(r.data, 'null'::jsonb), r.labels, r.owner, r.revision,
             r.created_revision,
             CASE WHEN r.expires_at IS NULL THEN NULL
               ELSE 'epoch'::timestamptz + r.expires_at * interval '1 millisecond' END
           FROM jsonb_to_recordset(p_upserts) AS r(kind text, id text, data jsonb, labels jsonb,
             owner text, revision bigint, created_revision bigint, expires_at float8)
           ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data, labels = excluded.labels,
             owner = excluded.owner, revision = excluded.revision,
             created_revision = excluded.created_revision, expires_at = excluded.expires_at;
         END IF;
         IF p_feed IS NOT NULL THEN
           INSERT INTO ${t.changes} (revision, seq, kind, id, after${reasons ? ', reason' : ''})
           SELECT c.revision, c.seq, c.kind, c.id, c.after${reasons ? ', c.reason' : ''}
           FROM jsonb_to_recordset(p_feed)
             AS c(revision bigint, seq int, kind text, id text, after jsonb${reasons ? ', reason text' : ''});
         END IF;
         UPDATE ${t.revision} SET revision = p_last, last_batch = p_batch;${
           batches
             ? `
         INSERT INTO ${t.batches} (run, batch, last) VALUES (v_run, p_batch, p_last)
         ON CONFLICT (run) DO UPDATE SET batch = excluded.batch, last = excluded.last,
           at = now();`
             : ''
         }
       END IF;
       IF p_kinds IS NOT NULL THEN
         FOR v_kind IN SELECT jsonb_array_elements(p_kinds) LOOP
           ${kindsUpsert(t)}
           FOR v_index IN SELECT jsonb_array_elements(v_kind->'ensure') LOOP
             PERFORM ${t.ensureFieldIndexes}(v_kind->>'kind',
               ARRAY(SELECT jsonb_array_elements_text(v_index->'path')),
               v_index->>'btree', v_index->>'gin');
           END LOOP;
         END LOOP;
       END IF;
       IF p_session_puts IS NOT NULL${leases ? ' AND p_node IS NULL' : ''} THEN
         INSERT INTO ${t.sessions}
           (id, resume_token_hash, pid, name, ttl, children, last_child, principal, expires_at)
         SELECT s.id, s.resume_token_hash, s.pid, s.name, s.ttl, s.children, s.last_child,
           s.principal, now() + s.ttl * interval '1 millisecond'
         FROM jsonb_to_recordset(p_session_puts) AS s(id text, resume_token_hash text, pid text,
           name text, ttl float8, children jsonb, last_child int, principal text)
         ON CONFLICT (id) DO UPDATE SET resume_token_hash = excluded.resume_token_hash,
           pid = excluded.pid, name = excluded.name, ttl = excluded.ttl,
           children = excluded.children, last_child = excluded.last_child,
           principal = excluded.principal, expires_at = excluded.expires_at;
       END IF;
${leases ? leaseStatements(t) : SESSION_DELETES(t)}${answers ? answerStatements(t, leases) : ''}${
    leases ? LEASE_CHECKS(t) : ''
  }
       RETURN true;
     END
     $fn$`
}

/** The batch's run: its id up to the last `-` (all of it when it has none). */
const RUN_DECLARATION = `
       v_run text := left(p_batch, length(p_batch) - strpos(reverse(p_batch), '-'));`

const ANSWER_ARGS = `,
       p_answer_puts jsonb, p_answer_deletes jsonb`

/** Puts a batch's answers, forgets dropped ones and those of the sessions it deleted. */
function answerStatements(t: SchemaTables, leases: boolean): string {
  return `
       IF p_answer_puts IS NOT NULL THEN
         INSERT INTO ${t.answers} (session, call, revision, value)
         SELECT a.session, a.call, a.revision, a.value
         FROM jsonb_to_recordset(p_answer_puts)
           AS a(session text, call bigint, revision bigint, value text)
         ON CONFLICT (session, call) DO UPDATE SET revision = excluded.revision,
           value = excluded.value;
       END IF;
       IF p_answer_deletes IS NOT NULL THEN
         DELETE FROM ${t.answers} a USING jsonb_to_recordset(p_answer_deletes)
           AS d(session text, call bigint)
         WHERE a.session = d.session AND a.call = d.call;
       END IF;
       IF p_session_deletes IS NOT NULL THEN
         DELETE FROM ${t.answers} WHERE session = ANY(${
           // A cluster node's deletes may leave a row (another node's now, or one only a reaper
           // deletes): only the deleted rows lose their answers. A single server's all do.
           leases
             ? 'CASE WHEN p_node IS NULL THEN p_session_deletes ELSE v_gone END'
             : 'p_session_deletes'
         });
       END IF;`
}

const SESSION_DELETES = (t: SchemaTables): string => `
       IF p_session_deletes IS NOT NULL THEN
         DELETE FROM ${t.sessions} WHERE id = ANY(p_session_deletes);
       END IF;`

// With defaults, so that a node of the previous version, still running while a new one migrates
// the schema, calls the new function with its 11 arguments and writes as before.
const LEASE_ARGS = `,
       p_node text DEFAULT NULL, p_fences jsonb DEFAULT NULL, p_ends jsonb DEFAULT NULL`

const LEASE_DECLARATIONS = `
       v_refused bigint;
       v_session text;
       v_gone text[];`

/**
 * A cluster node's sessions (`p_node` set; migration 10). A put with `fresh` creates the
 * row, held by the node; any other put updates only a row the node still holds with a live
 * lease, and never moves the lease (renewals do: the backend's `renewSessions`), so a session
 * that was reaped is never created again and one whose lease ran out never comes back. A delete
 * (the session ended on its node, after its exit's commit) removes only a row the node holds
 * with a live lease: a session another node took over stays, and so does one whose lease ran
 * out, which only a reaper's commit deletes, with what it still owns. `v_gone` collects the
 * deleted ids, whose answers go with them.
 */
function leaseStatements(t: SchemaTables): string {
  const columns = `s(id text, resume_token_hash text, pid text, name text, ttl float8,
           children jsonb, last_child int, principal text, fresh boolean)`
  return `
       IF p_session_puts IS NOT NULL AND p_node IS NOT NULL THEN
         INSERT INTO ${t.sessions} (id, resume_token_hash, pid, name, ttl, children, last_child,
           principal, expires_at, node)
         SELECT s.id, s.resume_token_hash, s.pid, s.name, s.ttl, s.children, s.last_child,
           s.principal, now() + s.ttl * interval '1 millisecond', p_node
         FROM jsonb_to_recordset(p_session_puts) AS ${columns}
         WHERE s.fresh
         ON CONFLICT (id) DO UPDATE SET resume_token_hash = excluded.resume_token_hash,
           pid = excluded.pid, name = excluded.name, ttl = excluded.ttl,
           children = excluded.children, last_child = excluded.last_child,
           principal = excluded.principal
         WHERE ${t.sessions}.node = p_node AND ${t.sessions}.expires_at > clock_timestamp();
         UPDATE ${t.sessions} x SET resume_token_hash = s.resume_token_hash, pid = s.pid,
           name = s.name, ttl = s.ttl, children = s.children, last_child = s.last_child,
           principal = s.principal
         FROM jsonb_to_recordset(p_session_puts) AS ${columns}
         WHERE NOT coalesce(s.fresh, false) AND x.id = s.id AND x.node = p_node
           AND x.expires_at > clock_timestamp();
       END IF;
       IF p_session_deletes IS NOT NULL THEN
         WITH d AS (DELETE FROM ${t.sessions} WHERE id = ANY(p_session_deletes)
             AND (p_node IS NULL OR (node = p_node AND expires_at > clock_timestamp())) RETURNING id)
         SELECT array_agg(id) INTO v_gone FROM d;
       END IF;`
}

/**
 * The lease checks (migration 10), last, so that sessions put by this batch count: a commit
 * fenced on a session is refused unless the writing node still holds that session with a live
 * lease, or this batch deleted it (`v_gone`: it ended on this node, after its last commits); a
 * commit that ends sessions (a reaper's) is refused when one of them holds a live lease again,
 * and deletes them otherwise. Leases are judged at `clock_timestamp()`, not at the
 * transaction's start. A refusal rolls the whole batch back; the
 * runtime then writes it in parts until the refused commit is alone.
 */
const LEASE_CHECKS = (t: SchemaTables): string => `
       IF p_fences IS NOT NULL THEN
         SELECT f.revision, f.session INTO v_refused, v_session
         FROM jsonb_to_recordset(p_fences) AS f(revision bigint, session text)
         WHERE NOT EXISTS (SELECT 1 FROM ${t.sessions} s
             WHERE s.id = f.session AND s.node = p_node AND s.expires_at > clock_timestamp())
           AND f.session <> ALL(coalesce(v_gone, '{}'))
         ORDER BY f.revision LIMIT 1;
         IF v_refused IS NOT NULL THEN
           RAISE EXCEPTION 'session % is not held by node % with a live lease: it was reaped or another node took it',
             v_session, p_node USING ERRCODE = '${SESSION_LOST}', DETAIL = v_refused::text;
         END IF;
       END IF;
       IF p_ends IS NOT NULL THEN
         SELECT e.revision INTO v_refused
         FROM jsonb_to_recordset(p_ends) AS e(revision bigint, session text)
         JOIN ${t.sessions} s ON s.id = e.session WHERE s.expires_at > clock_timestamp()
         ORDER BY e.revision LIMIT 1;
         IF v_refused IS NOT NULL THEN
           RAISE EXCEPTION 'commit % ends a session whose lease is live', v_refused
             USING ERRCODE = '${SESSION_LOST}', DETAIL = v_refused::text;
         END IF;
         WITH d AS (DELETE FROM ${t.sessions} s
             USING jsonb_to_recordset(p_ends) AS e(revision bigint, session text)
             WHERE s.id = e.session RETURNING s.id)
         SELECT array_agg(id) INTO v_gone FROM d;
         DELETE FROM ${t.answers} WHERE session = ANY(v_gone);
       END IF;`

/** The schema version this code expects. */
export const SCHEMA_VERSION = MIGRATIONS.length

/** A validated schema name as an SQL string literal (it holds no quote, by the regex). */
function literal(schemaName: string): string {
  return `'${schemaName}'`
}

/**
 * Creates the schema and applies the missing migrations, all in one transaction,
 * under an advisory lock so that nodes starting together migrate once.
 */
export async function migrate(client: PoolClient, schemaName: string): Promise<void> {
  const t = schemaTables(schemaName)
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`dataspace:${schemaName}`])
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${t.schema}`)
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${t.migrations} (
         version integer PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now())`,
    )
    const { rows } = await client.query<{ version: number | null }>(
      `SELECT max(version) AS version FROM ${t.migrations}`,
    )
    const current = rows[0]?.version ?? 0
    if (current > MIGRATIONS.length) {
      throw new InvalidArgument(
        `postgres backend: schema ${schemaName} is at version ${current}, newer than this code (${MIGRATIONS.length})`,
      )
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      for (const statement of MIGRATIONS[version]!(t, schemaName)) await client.query(statement)
      await client.query(`INSERT INTO ${t.migrations} (version) VALUES ($1)`, [version + 1])
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}
