import { nextBatch, QueuedStream } from '../../streams/index.js'
import type { LocalProcess } from '../../engine/index.js'
import type { Message, Stream } from '../../model/index.js'

/**
 * Forwards a session process's mailbox to whichever connection is subscribed to it now. A
 * process has one mailbox stream for its whole life, but a client re-subscribes after every
 * reconnect; while nobody is subscribed the relay stops pulling, so messages wait in the
 * mailbox under its own bound (and overflow is counted there, as in process).
 */
export class MailboxRelay {
  #view: QueuedStream<Message> | undefined
  #held: Message[] = []
  #viewOpened: (() => void) | undefined

  constructor(proc: LocalProcess) {
    // #run only awaits streams that end rather than fail; should it ever throw, the
    // subscriber's view ends with the error instead of the rejection going unhandled.
    this.#run(proc).catch((error: unknown) => {
      this.#view?.end({ error })
    })
  }

  /** A new subscription; the previous one, if any, ends. */
  open(): Stream<Message> {
    this.#view?.close()
    const view: QueuedStream<Message> = new QueuedStream(() => {
      if (this.#view === view) this.#view = undefined
    })
    this.#view = view
    for (const message of this.#held) view.push(message)
    this.#held = []
    this.#viewOpened?.()
    return view
  }

  async #run(proc: LocalProcess): Promise<void> {
    for (;;) {
      if (this.#view === undefined) {
        await new Promise<void>((resolve) => {
          this.#viewOpened = resolve
        })
        this.#viewOpened = undefined
      }
      const batch = await nextBatch(proc.messages)
      if (batch === undefined) {
        this.#view?.end('owner-exit')
        return
      }
      const view = this.#view
      // A subscriber that left while we waited: keep the batch for the next one.
      if (view === undefined) this.#held.push(...batch)
      else for (const message of batch) view.push(message)
    }
  }
}

const relays = new WeakMap<LocalProcess, MailboxRelay>()

/** The relay of `proc`'s mailbox, created on first subscription. */
export function mailboxOf(proc: LocalProcess): Stream<Message> {
  let relay = relays.get(proc)
  if (relay === undefined) relays.set(proc, (relay = new MailboxRelay(proc)))
  return relay.open()
}
