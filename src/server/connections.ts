import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Tracks each connection's in-flight requests so that shutdown can end idle connections at once
 * (including ones that never sent a request, which `closeIdleConnections` leaves open: fetch
 * clients open spare sockets) and end busy ones as soon as their last response is written.
 */
export class ConnectionTracker {
  readonly #inFlight = new Map<Socket, number>()
  #draining = false

  constructor(http: Server) {
    http.on('connection', (socket: Socket) => {
      this.#inFlight.set(socket, 0)
      socket.once('close', () => this.#inFlight.delete(socket))
    })
  }

  /** Call at the start of every request. */
  track(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket
    this.#inFlight.set(socket, (this.#inFlight.get(socket) ?? 0) + 1)
    res.once('close', () => {
      const left = (this.#inFlight.get(socket) ?? 1) - 1
      this.#inFlight.set(socket, left)
      // end(), not destroy(): the response's last bytes may still be in the socket's buffer.
      if (this.#draining && left === 0) socket.end()
    })
  }

  /** Ends idle connections now, and busy ones when their responses finish. */
  drain(): void {
    this.#draining = true
    for (const [socket, count] of this.#inFlight) if (count === 0) socket.end()
  }

  /** Cuts every remaining connection (the grace period ran out). */
  destroyAll(): void {
    for (const socket of this.#inFlight.keys()) socket.destroy()
  }
}
