import type { Stream } from '../model/types.js'

interface Batching<T> {
  nextBatch(): Promise<T[] | undefined>
}

/**
 * The next batch of a stream: every item available now, waiting for at least one; `undefined`
 * when the stream has ended. The engine's streams batch natively, and a batch never splits a
 * commit's events (they are queued in one synchronous step), so a consumer that forwards batches
 * knows where commits end. Other streams yield one item at a time.
 */
export async function nextBatch<T>(stream: Stream<T>): Promise<T[] | undefined> {
  const batching = stream as Partial<Batching<T>>
  if (typeof batching.nextBatch === 'function') return batching.nextBatch()
  const result = await stream.next()
  return result.done === true ? undefined : [result.value]
}
