/** The connection cap shared by a session's torrents: slots, run-time changes, and who is told of room. */
import { describe, expect, it } from "@effect/vitest"
import * as ConnectionBudget from "../../src/torrent/ConnectionBudget.ts"

describe("ConnectionBudget", () => {
  it("hands out at most `max` slots; a release or a raised cap tells the waiters, a lowered one closes nobody", () => {
    const b = ConnectionBudget.make(2)
    let woken = 0
    const off = b.onRoom(() => woken++)
    expect([b.tryAcquire(), b.tryAcquire(), b.tryAcquire()]).toEqual([true, true, false])
    expect(b.inUse()).toBe(2)
    b.release()
    expect(woken).toBe(1)
    expect(b.tryAcquire()).toBe(true)
    b.setMax(1) // two in use, cap one: nobody closed, nothing new
    expect(b.inUse()).toBe(2)
    expect(b.tryAcquire()).toBe(false)
    b.release()
    expect(woken).toBe(1) // still at the cap: no room yet
    expect(b.tryAcquire()).toBe(false)
    b.setMax(3)
    expect(woken).toBe(2)
    expect(b.tryAcquire()).toBe(true)
    off()
    b.release()
    expect(woken).toBe(2)
    b.release()
    b.release()
    b.release() // never below zero
    expect(b.inUse()).toBe(0)
    expect(b.max()).toBe(3)
  })

  it("a release wakes nobody unless someone was refused a slot since the last wake-up", () => {
    const b = ConnectionBudget.make(3)
    let woken = 0
    b.onRoom(() => woken++)
    b.onRoom(() => woken++)
    expect([b.tryAcquire(), b.tryAcquire()]).toEqual([true, true])
    b.release()
    b.release() // connections come and go below the cap: no torrent is told (no thundering herd)
    expect(woken).toBe(0)
    expect([b.tryAcquire(), b.tryAcquire(), b.tryAcquire(), b.tryAcquire()]).toEqual([true, true, true, false])
    b.release()
    expect(woken).toBe(2) // both told once
    b.release()
    expect(woken).toBe(2) // and not again until another refusal
    expect(b.tryAcquire()).toBe(true)
    expect(b.tryAcquire()).toBe(true)
    expect(b.tryAcquire()).toBe(false)
    b.setMax(4)
    expect(woken).toBe(4)
  })
})
