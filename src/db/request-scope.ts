/**
 * Whether the code running now is handling a request: keyhole's adapters run every request's
 * hooks and handlers inside {@link runInRequest}, so a system context started from a request
 * (where an injected or mistaken call would cross groups for a user) is refused unless the call
 * says it is meant (`allowInRequest: true`). AsyncLocalStorage follows the request through its
 * awaits and callbacks, and through work it starts without awaiting.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

const scope = new AsyncLocalStorage<true>()

/** Runs `handle` (and everything it starts) as request handling. */
export function runInRequest<T>(handle: () => T): T {
  return scope.run(true, handle)
}

/** True inside {@link runInRequest}. */
export function insideRequest(): boolean {
  return scope.getStore() === true
}
