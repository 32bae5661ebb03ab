import type { Process, ProcessFunction, SpawnOptions } from './types.js'

/**
 * Runs `fn` as the life of `proc` (what `spawn` does, in process and over the network): it
 * starts after `spawn` returns, as an Erlang spawn does; its return exits the process `normal`,
 * a throw or rejection exits it with `{ error }`, and aborting `options.signal` exits it
 * `aborted`. `proc.signal` is aborted when the process exits, for `fn` to stop.
 */
export function runProcess<P extends Process & { readonly signal: AbortSignal }>(
  proc: P,
  fn: ProcessFunction,
  options: SpawnOptions,
): P {
  // An exit that fails (the client closed meanwhile) has nobody to report to.
  const exit = (reason: Parameters<Process['exit']>[0]): void =>
    void proc.exit(reason).catch(() => {})
  const external = options.signal
  if (external !== undefined) {
    const onAbort = (): void => exit('aborted')
    if (external.aborted) onAbort()
    else {
      external.addEventListener('abort', onAbort, { once: true })
      // `exited` never rejects and removing a listener cannot throw: nothing to report here.
      proc.exited.then(
        () => external.removeEventListener('abort', onAbort),
        () => external.removeEventListener('abort', onAbort),
      )
    }
  }
  queueMicrotask(() => {
    if (!proc.alive) return
    let result: unknown
    try {
      result = fn(proc, proc.signal)
    } catch (error) {
      exit({ error })
      return
    }
    Promise.resolve(result).then(
      () => exit('normal'),
      (error: unknown) => exit({ error }),
    )
  })
  return proc
}
