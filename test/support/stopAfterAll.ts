/**
 * Things a test file starts (seeders, trackers, sessions) and stops once all its tests ran: `const keep =
 * stopAfterAll()` at the top of the file, then `keep(await start(...))`.
 */
import { afterAll } from "@effect/vitest"

export const stopAfterAll = () => {
  const running: Array<{ stop: () => Promise<void> }> = []
  afterAll(() => Promise.all(running.map((r) => r.stop())))
  return <A extends { stop: () => Promise<void> }>(a: A): A => {
    running.push(a)
    return a
  }
}
