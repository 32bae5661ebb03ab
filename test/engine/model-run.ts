// One run of the engine model test: the engine, the reference model, and the checks after every
// command. The properties that drive it are in model.test.ts.
import assert from 'node:assert/strict'
import { createDataspace } from '../../src/index.js'
import type {
  ClaimOptions,
  Condition,
  DataspaceApi,
  ExitReason,
  Op,
  OpResult,
  Process,
  Selector,
  TransactResult,
  Watch,
  WatchEvent,
} from '../../src/index.js'
import {
  aim,
  CLAIMS,
  drainWatch,
  expectOutcome,
  fail,
  IDS,
  key,
  KINDS,
  ReferenceModel,
  resolveIfRevision,
  SELECTORS,
  settle,
  sortById,
  within,
} from './model-helpers.js'
import type {
  Code,
  Command,
  Data,
  Kind,
  ModelSelector,
  Rec,
  Setup,
  Staging,
  Step,
} from './model-helpers.js'

// ---------------------------------------------------------------------------------------------
// One run: the engine, the model, and the checks after every command

/** What a spawned process's function throws when a command crashes it. */
const CRASH = new Error('crash (model test)')

interface Slot {
  proc: Process
  readonly name: string
  readonly spawned: boolean
  /** For a spawned process: settles its function, which exits it (`normal`, or `{ error }`). */
  end: ((how: 'return' | 'throw') => void) | undefined
  /** The reason the test expects `exited` to resolve with (the first exit wins). */
  exitReason: ExitReason | undefined
}

interface OpenWatch {
  readonly watch: Watch<Data>
  readonly kind: Kind
  readonly selector: Selector
  readonly matches: (record: Rec) => boolean
  /** The watcher's materialised view: id → record. */
  view: Map<string, Rec>
  /** The revision the view is at. */
  at: number
  /** The first event must be a snapshot (and one follows every `reset`). */
  expectSnapshot: boolean
}

class Run {
  readonly ds: DataspaceApi
  readonly model = new ReferenceModel()
  readonly slots: Slot[] = []
  readonly exited = new Set<string>()
  readonly watches: OpenWatch[] = []
  readonly trace: string[] = []
  /** The model's records at every revision (maps are never mutated once committed). */
  readonly states = new Map<number, ReadonlyMap<string, Rec>>([[0, new Map()]])
  /** What kind of command made each revision: retractions by an exit say `owner-exit`. */
  readonly madeBy = new Map<number, Command['t']>()

  constructor(ds: DataspaceApi, setup: Setup) {
    this.ds = ds
    for (let index = 0; index < setup.processes; index++) {
      const spawned = setup.spawned && index === setup.processes - 1
      this.slots.push(this.#start(spawned ? 'spawned' : `p${index}`, spawned))
    }
  }

  /** A new process for a slot: `ds.process`, or `ds.spawn` with a function the test settles. */
  #start(name: string, spawned: boolean): Slot {
    if (!spawned) {
      const proc = this.ds.process(name)
      return { proc, name, spawned, end: undefined, exitReason: undefined }
    }
    let end: Slot['end']
    const proc = this.ds.spawn(
      name,
      (_proc, signal) =>
        new Promise<void>((resolve, reject) => {
          end = (how) => (how === 'return' ? resolve() : reject(CRASH))
          signal.addEventListener('abort', () => resolve(), { once: true })
        }),
    )
    // The function starts in a microtask after spawn; `end` is read once it has.
    return {
      proc,
      name,
      spawned,
      get end() {
        return end
      },
      exitReason: undefined,
    }
  }

  slot(p: number): Slot {
    return this.slots[p % this.slots.length] as Slot
  }

  alive(slot: Slot): boolean {
    return !this.exited.has(slot.proc.id)
  }

  async exec(command: Command): Promise<string> {
    switch (command.t) {
      case 'assert':
        return this.#assert(command)
      case 'retract':
        return this.#retract(command)
      case 'transact':
        return this.#transact(command)
      case 'claim':
        return this.#claim(command)
      case 'exit':
        return this.#exit(command)
      case 'respawn':
        return this.#respawn(command)
      case 'watch':
        return this.#watch(command)
      case 'unwatch':
        return this.#unwatch(command)
      default:
        command satisfies never
        throw new Error('unknown command')
    }
  }

  /** Runs one write: the model predicts from a staging, the engine acts, the staging commits on success. */
  async #write<T>(
    slot: Slot,
    predict: (staging: Staging) => Step<T>,
    act: () => Promise<unknown>,
  ): Promise<string> {
    const staging = this.model.stage(slot.proc.id)
    const expected = this.alive(slot) ? predict(staging) : fail('ProcessExited')
    const outcome = expectOutcome(await settle(act()), expected)
    if (expected.ok) this.model.commit(staging)
    return outcome
  }

  async #assert(command: Extract<Command, { t: 'assert' }>): Promise<string> {
    const slot = this.slot(command.p)
    const { kind, data } = command
    const id = aim(this.model.records.values(), command, slot.proc.id)
    const labels = command.tier === undefined ? undefined : { tier: command.tier }
    const ifRevision = resolveIfRevision(command.ifRevision, this.model.get(kind, id))
    const outcome = await this.#write(
      slot,
      (staging) => staging.assert(kind, id, data, labels, ifRevision),
      () =>
        slot.proc.assert(kind, id, data, {
          ...(labels === undefined ? {} : { labels }),
          ...(ifRevision === undefined ? {} : { ifRevision }),
        }),
    )
    return `${outcome} on ${id}${ifRevision === undefined ? '' : ` ifRevision ${ifRevision}`}`
  }

  async #retract(command: Extract<Command, { t: 'retract' }>): Promise<string> {
    const slot = this.slot(command.p)
    const { kind } = command
    const id = aim(this.model.records.values(), command, slot.proc.id)
    const ifRevision = resolveIfRevision(command.ifRevision, this.model.get(kind, id))
    const outcome = await this.#write(
      slot,
      (staging) => staging.retract(kind, id, ifRevision),
      () => slot.proc.retract(kind, id, ifRevision === undefined ? {} : { ifRevision }),
    )
    return `${outcome} on ${id}${ifRevision === undefined ? '' : ` ifRevision ${ifRevision}`}`
  }

  async #claim(command: Extract<Command, { t: 'claim' }>): Promise<string> {
    const slot = this.slot(command.p)
    const spec = CLAIMS[command.claim % CLAIMS.length] as (typeof CLAIMS)[number]
    const options: ClaimOptions = {
      ...spec.selector,
      patch: command.self === 'patch' ? { ...spec.patch, owner: 'self' } : spec.patch,
      ...(command.self === 'option' ? { owner: 'self' as const } : {}),
    }
    let claimed: Rec | undefined
    const outcome = await this.#write(
      slot,
      (staging) => {
        claimed = staging.claim(command.kind, spec, command.self !== 'no')
        return { ok: true, value: claimed }
      },
      () => slot.proc.claim(command.kind, options),
    )
    return outcome === 'ok' ? `claimed ${claimed?.id ?? 'nothing'}` : outcome
  }

  async #transact(command: Extract<Command, { t: 'transact' }>): Promise<string> {
    const slot = this.slot(command.p)
    const staging = this.model.stage(slot.proc.id)
    const errors = new Set<Code>()
    const conditions: Condition[] = command.if.map(({ kind, id, check }) => {
      const current = this.model.get(kind, id)
      const revision = current?.revision ?? 0
      switch (check) {
        case 'revision':
          return { kind, id, revision }
        case 'stale-revision':
          errors.add('Conflict')
          return { kind, id, revision: revision + 1 }
        case 'exists':
          if (current === undefined) errors.add('Conflict')
          return { kind, id, exists: true }
        case 'missing':
          if (current !== undefined) errors.add('Conflict')
          return { kind, id, exists: false }
        case 'group-x':
          if (current?.data.group !== 'x') errors.add('Conflict')
          return { kind, id, field: 'group', equals: 'x' }
        default:
          check satisfies never
          throw new Error('unknown condition')
      }
    })
    // Ops are predicted in order against the staging; the first failing op decides the error.
    const ops: Op[] = []
    const results: OpResult[] = []
    let failed = false
    const record = (step: Step<Rec | undefined>): void => {
      if (failed) return
      if (step.ok) results.push(step.value)
      else {
        failed = true
        for (const code of step.errors) errors.add(code)
      }
    }
    for (const op of command.then) {
      switch (op.op) {
        case 'assert': {
          const id = aim(staging.staged.values(), op, slot.proc.id)
          const labels = op.tier === undefined ? undefined : { tier: op.tier }
          const ifRevision = resolveIfRevision(op.ifRevision, staging.read(op.kind, id))
          ops.push({
            op: 'assert',
            kind: op.kind,
            id,
            data: op.data,
            ...(labels === undefined ? {} : { labels }),
            ...(ifRevision === undefined ? {} : { ifRevision }),
          })
          if (!failed) record(staging.assert(op.kind, id, op.data, labels, ifRevision))
          break
        }
        case 'retract': {
          const id = aim(staging.staged.values(), op, slot.proc.id)
          const ifRevision = resolveIfRevision(op.ifRevision, staging.read(op.kind, id))
          ops.push({
            op: 'retract',
            kind: op.kind,
            id,
            ...(ifRevision === undefined ? {} : { ifRevision }),
          })
          if (!failed) record(staging.retract(op.kind, id, ifRevision))
          break
        }
        case 'claim': {
          const spec = CLAIMS[op.claim % CLAIMS.length] as (typeof CLAIMS)[number]
          ops.push({
            op: 'claim',
            kind: op.kind,
            ...spec.selector,
            patch: spec.patch,
            ...(op.self ? { owner: 'self' as const } : {}),
            optional: op.optional,
          })
          if (!failed) {
            const claimed = staging.claim(op.kind, spec, op.self)
            record(
              claimed === undefined && !op.optional
                ? fail('Conflict')
                : { ok: true, value: claimed },
            )
          }
          break
        }
        default:
          op satisfies never
      }
    }
    const changes = staging.changed()
    const expected: Step<TransactResult> = !this.alive(slot)
      ? fail('ProcessExited')
      : errors.size > 0
        ? fail(...errors)
        : { ok: true, value: { revision: this.model.revision + (changes ? 1 : 0), results } }
    const request = conditions.length > 0 ? { if: conditions, then: ops } : { then: ops }
    const outcome = expectOutcome(await settle(slot.proc.transact(request)), expected)
    if (expected.ok) this.model.commit(staging)
    return `${outcome}${expected.ok && !changes ? ' (no net change)' : ''}`
  }

  async #exit(command: Extract<Command, { t: 'exit' }>): Promise<string> {
    const slot = this.slot(command.p)
    const pid = slot.proc.id
    const wasAlive = this.alive(slot)
    const staging = this.model.stage(pid)
    staging.removeOwnedBy(pid)
    let how: string = command.how
    if (command.how !== 'exit' && slot.end !== undefined) {
      // A spawned process lives exactly as long as its function: return or throw exits it.
      slot.end(command.how === 'finish' ? 'return' : 'throw')
      if (wasAlive) slot.exitReason = command.how === 'finish' ? 'normal' : { error: CRASH }
    } else {
      how = 'exit'
      const reason = `killed-${this.trace.length}`
      if (wasAlive) slot.exitReason = reason
      await slot.proc.exit(reason)
    }
    const reason = await within(slot.proc.exited, 2000, `${pid} exited`)
    assert.deepStrictEqual(reason, slot.exitReason, 'exited resolves with the first exit reason')
    assert.equal(slot.proc.alive, false, 'an exited process is not alive')
    this.exited.add(pid)
    const committed = this.model.commit(staging)
    // Everything it owned went in ONE commit (none if it owned nothing).
    assert.equal(this.ds.revision, this.model.revision, 'an exit is one commit, or none')
    return `${how}${wasAlive ? '' : ' (already exited)'}${committed ? ' retracting' : ''}`
  }

  /** Replaces the first exited process at or after slot `p` with a new one. */
  async #respawn(command: Extract<Command, { t: 'respawn' }>): Promise<string> {
    const count = this.slots.length
    const slot = Array.from({ length: count }, (_, i) => this.slot(command.p + i)).find(
      (candidate) => !this.alive(candidate),
    )
    if (slot === undefined) return 'all alive: nothing to do'
    const index = this.slots.indexOf(slot)
    this.slots[index] = this.#start(slot.name, slot.spawned)
    const pid = this.slot(index).proc.id
    assert.ok(!this.exited.has(pid), 'a new process gets a new pid')
    return `new pid ${pid}`
  }

  async #watch(command: Extract<Command, { t: 'watch' }>): Promise<string> {
    const base = SELECTORS[command.sel % SELECTORS.length] as ModelSelector
    const owner = command.owner === undefined ? undefined : this.slot(command.owner).proc.id
    const selector: Selector = owner === undefined ? base.selector : { ...base.selector, owner }
    const matches =
      owner === undefined ? base.matches : (r: Rec) => base.matches(r) && r.owner === owner
    const from =
      command.back === undefined ? undefined : Math.max(0, this.model.revision - command.back)
    const watch = this.ds.watch<Data>(command.kind, {
      ...selector,
      ...(command.small ? { bufferSize: 1 } : {}),
      ...(from === undefined ? {} : { fromRevision: from }),
    })
    this.model.revision++ // the watch is published as a `$watch` record: one commit
    this.watches.push({
      watch,
      kind: command.kind,
      selector,
      matches,
      // A resumed watch starts from what the model held at `from`; it gets no snapshot.
      view: new Map(
        from === undefined ? [] : this.#at(from, command.kind, matches).map((r) => [r.id, r]),
      ),
      at: from ?? 0,
      expectSnapshot: from === undefined,
    })
    return `watch #${this.watches.length - 1} ${JSON.stringify(selector)}${from === undefined ? '' : ` from ${from}`}`
  }

  /** The model's records of `kind` matching at `revision`, in id order. */
  #at(revision: number, kind: Kind, matches: (record: Rec) => boolean): Rec[] {
    const state = this.states.get(revision)
    assert.ok(state !== undefined, `no model state at revision ${revision}`)
    return sortById([...state.values()].filter((r) => r.kind === kind && matches(r)))
  }

  /** Records the state after a command (called before `verify`). */
  record(command: Command, before: number): void {
    if (this.model.revision !== before) this.madeBy.set(this.model.revision, command.t)
    this.states.set(this.model.revision, this.model.records)
  }

  async #unwatch(command: Extract<Command, { t: 'unwatch' }>): Promise<string> {
    if (this.watches.length === 0) return 'no open watch'
    const index = command.w % this.watches.length
    const [open] = this.watches.splice(index, 1) as [OpenWatch]
    switch (command.how) {
      case 'close':
        open.watch.close()
        break
      case 'return':
        await open.watch.return()
        break
      case 'dispose':
        await open.watch[Symbol.asyncDispose]()
        break
      default:
        command.how satisfies never
    }
    this.model.revision++ // withdrawing the `$watch` record
    assert.equal(await within(open.watch.closed, 2000, 'watch.closed'), 'closed')
    const rest = await drainWatch(open.watch)
    assert.deepStrictEqual(rest, { events: [], done: true }, 'a closed watch delivers nothing')
    return `closed watch #${index}`
  }

  /** Every invariant, after every command. */
  async verify(): Promise<void> {
    const { ds, model } = this
    assert.equal(ds.revision, model.revision, 'revision: one per commit, none for failures')
    // 1. State: every selector of the table (incl. those of open watches) on both kinds, whole
    // and in pages of two, and get.
    for (const kind of KINDS) {
      for (const [index, { selector, matches }] of SELECTORS.entries()) {
        const list = await ds.list<Data>(kind, selector)
        const expected = model.items(kind, matches)
        const label = `list(${kind}, ${JSON.stringify(selector)})`
        assert.equal(list.revision, model.revision, `${label}: revision`)
        assert.deepStrictEqual(list.items, expected, label)
        // Pages cost time: a few selectors (everything, an index, a label scan) are enough.
        if (PAGED.includes(index)) {
          assert.deepStrictEqual(await paged(ds, kind, selector, 2), expected, `${label} in pages`)
        }
      }
      for (const id of IDS) {
        assert.deepStrictEqual(await ds.get(kind, id), model.get(kind, id), `get(${kind}, ${id})`)
      }
      // 3. Ownership: nothing owned by an exited process; live owners own what the model says.
      for (const pid of this.exited) {
        const { items } = await ds.list(kind, { owner: pid })
        assert.deepStrictEqual(items, [], `records still owned by exited ${pid}`)
      }
      for (const slot of this.slots) {
        const pid = slot.proc.id
        const { items } = await ds.list(kind, { owner: pid })
        assert.deepStrictEqual(
          items,
          model.items(kind, (r) => r.owner === pid),
          `list(${kind}, { owner: ${pid} })`,
        )
      }
    }
    // 4. Every open watch is published as one `$watch` record, and only open ones.
    const published = await ds.list<{ kind: string }>('$watch')
    assert.deepStrictEqual(
      published.items.map((r) => r.data.kind).sort(),
      this.watches.map((w) => w.kind).sort(),
      'one $watch record per open watch',
    )
    // 2. Watchers: drain each, apply its events, compare its view with list() at this revision.
    const drained = await Promise.all(this.watches.map((w) => drainWatch(w.watch)))
    for (const [index, open] of this.watches.entries()) {
      const { events, done } = drained[index] as { events: WatchEvent<Data>[]; done: boolean }
      const label = `watch #${index} (${open.kind} ${JSON.stringify(open.selector)})`
      assert.equal(done, false, `${label} ended`)
      this.#apply(open, events, label)
      const list = await ds.list<Data>(open.kind, open.selector)
      assert.deepStrictEqual(list.items, model.items(open.kind, open.matches), `list of ${label}`)
      assert.deepStrictEqual(
        sortById([...open.view.values()]),
        list.items,
        `${label}: view equals list()`,
      )
    }
  }

  /**
   * Applies a watcher's events to its view, checking each against the model: revisions move
   * forward, `previous` and retracted records are what the watcher had, reasons are right, and
   * after each commit's events the view equals the model at that revision (docs/design.md,
   * "The model").
   */
  #apply(open: OpenWatch, events: readonly WatchEvent<Data>[], label: string): void {
    const now = this.ds.revision
    const touched = new Set<string>()
    const where = (event: WatchEvent<Data>): string => `${label}: ${JSON.stringify(event)}`
    const checkView = (): void => {
      assert.deepStrictEqual(
        sortById([...open.view.values()]),
        this.#at(open.at, open.kind, open.matches),
        `${label}: view at revision ${open.at} equals the model then`,
      )
    }
    for (const event of events) {
      if (open.expectSnapshot) {
        assert.ok(
          event.type === 'snapshot' || event.type === 'reset',
          `${where(event)}: expected a snapshot`,
        )
      }
      switch (event.type) {
        case 'snapshot':
          // A snapshot is taken at subscription or at overflow: both at the latest commit.
          assert.equal(event.revision, now, `${where(event)}: snapshot revision`)
          open.view = new Map(event.records.map((r) => [r.id, r]))
          open.at = event.revision
          open.expectSnapshot = false
          checkView()
          break
        case 'reset':
          assert.equal(event.reason, 'overflow', where(event))
          open.expectSnapshot = true
          break
        case 'asserted': {
          this.#advance(open, event, now, touched, where(event), checkView)
          assert.equal(event.record.revision, event.revision, `${where(event)}: record revision`)
          assert.deepStrictEqual(
            event.previous,
            open.view.get(event.record.id),
            `${where(event)}: previous is what the watcher had`,
          )
          open.view.set(event.record.id, event.record)
          break
        }
        case 'retracted': {
          this.#advance(open, event, now, touched, where(event), checkView)
          assert.deepStrictEqual(
            event.record,
            open.view.get(event.record.id),
            `${where(event)}: retracts what the watcher had`,
          )
          const state = this.states.get(event.revision)
          const expected = state?.has(key(open.kind, event.record.id))
            ? 'unmatched'
            : this.madeBy.get(event.revision) === 'exit'
              ? 'owner-exit'
              : 'retract'
          assert.equal(event.reason, expected, `${where(event)}: reason`)
          open.view.delete(event.record.id)
          break
        }
        case 'message':
          assert.fail(`${where(event)}: no message was sent`)
          break
        default:
          event satisfies never
      }
    }
    assert.equal(open.expectSnapshot, false, `${label}: a reset without its snapshot`)
    if (events.length > 0) checkView()
    open.at = now
  }

  /** A change event: at a commit after the view's, at most one per id per commit. */
  #advance(
    open: OpenWatch,
    event: Extract<WatchEvent<Data>, { type: 'asserted' | 'retracted' }>,
    now: number,
    touched: Set<string>,
    where: string,
    checkView: () => void,
  ): void {
    assert.equal(event.record.kind, open.kind, `${where}: kind`)
    assert.ok(event.revision <= now, `${where}: a revision from the future (now ${now})`)
    if (event.revision !== open.at || touched.size === 0) {
      assert.ok(event.revision > open.at, `${where}: revision went back (view at ${open.at})`)
      // The previous commit's events are all applied: the view must be the model's at that revision.
      if (touched.size > 0) checkView()
      touched.clear()
      open.at = event.revision
    }
    assert.ok(!touched.has(event.record.id), `${where}: one event per id per commit`)
    touched.add(event.record.id)
  }

  describe(command: Command): string {
    const { t, ...rest } = command
    const pid = 'p' in command ? ` ${this.slot(command.p).proc.id}` : ''
    return `${t}${pid} ${JSON.stringify(rest)}`
  }
}

/** The selectors (by index in `SELECTORS`) whose lists are also read in pages. */
const PAGED = [0, 4, 5]

/** Every item of a list, read in pages of `limit` through `continue`. */
async function paged(
  ds: DataspaceApi,
  kind: Kind,
  selector: Selector,
  limit: number,
): Promise<Rec[]> {
  const items: Rec[] = []
  let page = await ds.list<Data>(kind, { ...selector, limit })
  for (;;) {
    assert.ok(page.items.length <= limit, `a page of ${page.items.length} > limit ${limit}`)
    items.push(...page.items)
    if (page.continue === undefined) return items
    page = await ds.list<Data>(kind, { ...selector, limit, continue: page.continue })
  }
}

export async function runCommands(setupValue: Setup, commands: readonly Command[]): Promise<void> {
  const ds = createDataspace()
  await ds.defineKind(KINDS[0], { indexes: ['group'] })
  const run = new Run(ds, setupValue)
  try {
    await run.verify()
    for (const [step, command] of commands.entries()) {
      const revision = ds.revision
      let outcome = '?'
      try {
        outcome = await run.exec(command)
        run.record(command, revision)
        await run.verify()
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        throw new Error(
          `step ${step}: ${run.describe(command)} → ${outcome}\n${message}\n--- steps before it ---\n${run.trace.join('\n')}`,
          { cause: error },
        )
      }
      run.trace.push(
        `${step}: ${run.describe(command)} → ${outcome} (rev ${revision}→${ds.revision})`,
      )
    }
  } finally {
    await ds.close()
  }
  for (const open of run.watches) {
    assert.equal(await within(open.watch.closed, 2000, 'closed'), 'dataspace-closed')
  }
}
