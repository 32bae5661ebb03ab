import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { Unavailable } from '../errors/index.js'
import type { LimitGuard } from './limits.js'
import type { ServerLimits } from './options.js'

type ConnectionLimit = 'maxConnections' | 'maxConnectionsPerAddress'

// Connections past a cap that are still let in, so that probes can reach a server under a
// flood; past the cap by more than this, a new connection is closed at once.
const PROBE_HEADROOM = 64

/**
 * Counts open TCP connections (HTTP and WebSocket alike), in total and per client address. A
 * connection past `maxConnections` or `maxConnectionsPerAddress` is let in but marked: it gets
 * one answer — a probe's or a `/metrics` scrape's, or 503 for anything else — and is closed. One that sends nothing is
 * cut by `headersTimeoutMs` like any other, and past the headroom it is closed on arrival, so
 * the open sockets never reach the process's open-file limit.
 */
export class ConnectionGate {
  readonly #limits: ServerLimits
  readonly #guard: LimitGuard
  readonly #perAddress = new Map<string, number>()
  readonly #over = new WeakMap<Socket, ConnectionLimit>()
  #total = 0

  constructor(limits: ServerLimits, guard: LimitGuard) {
    this.#limits = limits
    this.#guard = guard
  }

  /** Starts counting `http`'s connections. */
  watch(http: Server): void {
    http.on('connection', (socket: Socket) => this.#admit(socket))
  }

  /** Connections open now. */
  get size(): number {
    return this.#total
  }

  /** `Unavailable` naming the limit if `socket` came in past one: it may only be probed. */
  refusal(socket: Socket): Unavailable | undefined {
    const limit = this.#over.get(socket)
    if (limit === undefined) return undefined
    const max = this.#limits[limit]
    const whose = limit === 'maxConnections' ? 'the server' : `client ${socket.remoteAddress}`
    return new Unavailable(
      `${whose} has more open connections than limits.${limit} (${max}) allows; close idle ` +
        `connections and retry, or raise the limit: createServer({ limits: { ${limit} } }) or ` +
        `dataspace serve --limits ${limit}=N`,
    )
  }

  #admit(socket: Socket): void {
    const address = socket.remoteAddress ?? 'unknown'
    const mine = (this.#perAddress.get(address) ?? 0) + 1
    this.#perAddress.set(address, mine)
    this.#total++
    socket.once('close', () => {
      this.#total--
      const left = (this.#perAddress.get(address) ?? 1) - 1
      if (left <= 0) this.#perAddress.delete(address)
      else this.#perAddress.set(address, left)
    })
    const { maxConnections, maxConnectionsPerAddress } = this.#limits
    const over: ConnectionLimit | undefined =
      this.#total > maxConnections
        ? 'maxConnections'
        : mine > maxConnectionsPerAddress
          ? 'maxConnectionsPerAddress'
          : undefined
    if (over === undefined) return
    this.#guard.hit(over, { who: `client ${address}` })
    if (
      this.#total > maxConnections + PROBE_HEADROOM ||
      mine > maxConnectionsPerAddress + PROBE_HEADROOM
    ) {
      socket.destroy()
      return
    }
    this.#over.set(socket, over)
  }
}
