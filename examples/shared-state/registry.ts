import { z } from 'zod'
import type { DataspaceApi, DataspaceRecord, Op, Process } from '../../src/index.js'

/**
 * The agent registry — the ADR's `Arc<RwLock<HashMap<String, AgentState>>>` — is not a map
 * anyone holds: it is the set of `agent` records, each asserted by the agent's own process.
 * Readers query it without a read lock (records are immutable snapshots); each agent writes only
 * its own record, so writers never contend; and an agent's record is retracted in the same commit
 * as its exit, so the registry cannot list an agent that is gone.
 */
export const AGENT_KIND = 'agent'

/** What an agent is doing. */
export const AGENT_STATUSES = ['idle', 'busy'] as const

const agentSchema = z.object({
  name: z.string().min(1),
  capabilities: z.array(z.string().min(1)),
  status: z.enum(AGENT_STATUSES),
})

/** The data of an `agent` record. */
export type AgentData = z.output<typeof agentSchema>

/** Where an agent runs; a label, so lookups can use set-based label selectors. */
export type Tier = 'gpu' | 'cpu'

/** What an agent says about itself when it registers. */
export interface AgentSpec {
  /** Unique among live agents: the record id. */
  readonly name: string
  readonly capabilities: readonly string[]
  readonly tier: Tier
}

/**
 * Declares the `agent` kind. `status` and `capabilities` are indexed, so "an idle agent that can
 * summarise" is an index lookup (`capabilities` is an array: each element is indexed).
 */
export async function defineAgentKind(ds: Pick<DataspaceApi, 'defineKind'>): Promise<void> {
  await ds.defineKind<AgentData>(AGENT_KIND, {
    schema: agentSchema,
    indexes: ['status', 'capabilities'],
  })
}

/**
 * An agent's handle on its own record. Only the owning process can write it (`NotOwner` for
 * anyone else), so the status is never torn between two writers.
 */
export class Agent {
  readonly name: string
  readonly #proc: Process
  readonly #spec: AgentSpec

  constructor(proc: Process, spec: AgentSpec) {
    this.#proc = proc
    this.#spec = spec
    this.name = spec.name
  }

  /** The pid that owns (and is) this agent. */
  get pid(): string {
    return this.#proc.id
  }

  /** The write that sets the status, to put into a larger transaction. */
  statusOp(status: AgentData['status']): Op {
    const { name, capabilities, tier } = this.#spec
    const data: AgentData = { name, capabilities: [...capabilities], status }
    return { op: 'assert', kind: AGENT_KIND, id: name, data, labels: { tier } }
  }

  /** Sets the status in a commit of its own. */
  async setStatus(status: AgentData['status']): Promise<void> {
    await this.#proc.transact({ then: [this.statusOp(status)] })
  }
}

/**
 * Registers `proc` as an idle agent. The record lives exactly as long as the process: nobody
 * deregisters a crashed agent, and there is no lock for a crash to poison.
 * Rejects with `NotOwner` if a live agent already has the name.
 */
export async function registerAgent(proc: Process, spec: AgentSpec): Promise<Agent> {
  const agent = new Agent(proc, spec)
  await agent.setStatus('idle')
  return agent
}

/** A registry lookup: field and label selectors in Kubernetes grammar. */
export interface AgentQuery {
  /** e.g. `status=idle,capabilities=summarise` (an array field matches when any element does). */
  readonly fields?: string
  /** e.g. `tier in (gpu)`. */
  readonly labels?: string
}

/**
 * The agents matching `query`, consistent at one revision — the `registry.read().await` of the
 * ADR, without the lock: a reader never waits for a writer, nor a writer for a reader.
 *
 * @example
 * await findAgents(ds, { fields: 'status=idle,capabilities=summarise', labels: 'tier in (gpu)' })
 */
export async function findAgents(
  ds: Pick<DataspaceApi, 'list'>,
  query: AgentQuery = {},
): Promise<readonly DataspaceRecord<AgentData>[]> {
  const { items } = await ds.list<AgentData>(AGENT_KIND, {
    ...(query.fields === undefined ? {} : { fields: query.fields }),
    ...(query.labels === undefined ? {} : { labels: query.labels }),
  })
  return items
}

/**
 * Whether `pid` is a registered agent. Because the record goes in the exit commit, this is also
 * "is that process alive?" for any process that registers before it takes work and stays
 * registered until it exits — the janitor relies on exactly that.
 */
export async function isRegistered(ds: Pick<DataspaceApi, 'list'>, pid: string): Promise<boolean> {
  const { items } = await ds.list(AGENT_KIND, { owner: pid, limit: 1 })
  return items.length > 0
}
