/**
 * A byte budget for tests: the peak growth of this process's memory while something runs, sampled every few
 * milliseconds from a baseline taken after a full GC.
 *
 * `arrayBuffers` is where bytes from and for peers live (socket chunks, write queues, piece buffers, cached pieces),
 * so it is what a hostile peer would inflate if we buffered what it sends or what it makes us send. `heapUsed` counts
 * JS objects (decoded messages, per-peer state); its peak includes garbage not yet collected, so budgets on it are
 * looser.
 */
import * as v8 from "node:v8"
import * as vm from "node:vm"

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void

export interface Peak {
  /** Peak growth of `process.memoryUsage().arrayBuffers` over the baseline, bytes. */
  readonly arrayBuffers: number
  /** Peak growth of `heapUsed`, bytes. */
  readonly heapUsed: number
}

export interface Probe {
  /** Stops sampling; the peaks so far. */
  readonly stop: () => Peak
}

export const probe = (everyMs = 5): Probe => {
  gc()
  const base = process.memoryUsage()
  let ab = 0
  let heap = 0
  const sample = () => {
    const m = process.memoryUsage()
    ab = Math.max(ab, m.arrayBuffers - base.arrayBuffers)
    heap = Math.max(heap, m.heapUsed - base.heapUsed)
  }
  const timer = setInterval(sample, everyMs)
  return {
    stop: () => {
      clearInterval(timer)
      sample()
      return { arrayBuffers: ab, heapUsed: heap }
    }
  }
}

export const MiB = 1024 * 1024
