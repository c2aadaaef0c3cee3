/**
 * The session under concurrent commands, as a daemon meets them: the HTTP API, Transmission's RPC and the watch
 * folder change torrents at the same time while their runs start, complete and stop. Several fibers each run a
 * random list of commands (add, pause, resume, remove with or without data, file selection, queue moves, the
 * download slots, verify) on three torrents seeded in-process; fast-check's scheduler (`fc.scheduler`) decides the
 * order in which the fibers' commands start, and each command then runs for real (the lock, files, sockets, runs
 * starting and stopping under it).
 *
 * After every case: no command failed but for "not-found" (a command on a torrent another fiber removed) and the
 * refusal to unwant a torrent's last wanted file; ids and
 * info-hashes are unique; no torrent is in `error`; a restart from a copy of the state directory taken while it runs
 * (what `kill -9` leaves) and one after a clean stop both bring back exactly the same torrents with the same ids,
 * paused state and file selection; and once resumed, every torrent completes with its
 * wanted files byte-identical to the seeder's.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Session from "../../src/session/Session.ts"
import * as SessionLive from "../../src/session/SessionLive.ts"
import type * as TorrentInfo from "../../src/session/TorrentInfo.ts"
import { tempDir, testClient } from "../support/download.ts"
import { build, type Built, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const multi = (name: string, sizes: ReadonlyArray<number>) =>
  build({ name, pieceLength: 16384, files: sizes.map((length, i) => ({ path: [`f${i}.bin`], length })) })
// Files on piece boundaries, so an unwanted file shares no piece with a wanted one.
const torrents: ReadonlyArray<Built> = [
  multi("one", [32_768, 16_384, 49_152]),
  multi("two", [16_384, 65_536]),
  multi("three", [49_152, 16_384, 16_384])
]

type Outcome = "ok" | "duplicate" | "not-found" | "refused"

type Op =
  | { readonly _tag: "add"; readonly t: number; readonly paused: boolean }
  | { readonly _tag: "pause"; readonly t: number }
  | { readonly _tag: "resume"; readonly t: number; readonly now: boolean }
  | { readonly _tag: "remove"; readonly t: number; readonly deleteData: boolean }
  | { readonly _tag: "files"; readonly t: number; readonly file: number; readonly wanted: boolean }
  | { readonly _tag: "move"; readonly t: number; readonly to: "top" | "up" | "down" | "bottom" }
  | { readonly _tag: "slots"; readonly n: number }
  | { readonly _tag: "verify"; readonly t: number }

const t = FastCheck.nat(torrents.length - 1)
const opArb: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("add" as const), t, paused: FastCheck.boolean() }), weight: 4 },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("pause" as const), t }), weight: 2 },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("resume" as const), t, now: FastCheck.boolean() }), weight: 2 },
  {
    arbitrary: FastCheck.record({ _tag: FastCheck.constant("remove" as const), t, deleteData: FastCheck.boolean() }),
    weight: 2
  },
  {
    arbitrary: FastCheck.record({
      _tag: FastCheck.constant("files" as const),
      t,
      file: FastCheck.nat(2),
      wanted: FastCheck.boolean()
    }),
    weight: 2
  },
  {
    arbitrary: FastCheck.record({
      _tag: FastCheck.constant("move" as const),
      t,
      to: FastCheck.constantFrom("top" as const, "up" as const, "down" as const, "bottom" as const)
    }),
    weight: 1
  },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("slots" as const), n: FastCheck.integer({ min: 1, max: 3 }) }), weight: 1 },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("verify" as const), t }), weight: 1 }
)

/** A session over a fresh client on `stateDir`, in its own scope. */
const open = (stateDir: string, settings: Partial<TorrentInfo.Settings>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      SessionLive.layer({ stateDir, settings }).pipe(Layer.provide(testClient({ stateDir }))),
      scope
    )
    const session = yield* Effect.provide(Session.Session, context)
    return { session, close: Scope.close(scope, Exit.void) }
  })

const hexOf = (b: Built) => Buffer.from(b.metainfo.infoHash).toString("hex")

/** Waits (bounded, a safety net) until every torrent of the session is `seeding`. */
const allSeeding = (s: Session.SessionShape) =>
  Effect.gen(function*() {
    const events = yield* Stream.toPull(s.events)
    for (;;) {
      const list = yield* s.list
      if (list.every((x) => x.state === "seeding")) return list
      const bad = list.find((x) => x.state === "error" || x.state === "paused" || x.state === "finished")
      if (bad !== undefined) return yield* Effect.die(new Error(`${bad.name} is ${bad.state}: ${JSON.stringify(bad.error)}`))
      yield* Effect.timeout(events, "1 second").pipe(Effect.ignore)
    }
  }).pipe(
    Effect.scoped,
    Effect.timeoutFail({ duration: Duration.seconds(60), onTimeout: () => new Error("not every torrent completed") })
  )

/** Across cases: torrents present at the end (checked through the restart and completed). */
let checked = 0

const runCase = (ports: ReadonlyArray<number>, s: FastCheck.Scheduler, lists: ReadonlyArray<ReadonlyArray<Op>>) =>
  Effect.gen(function*() {
    const dir = tempDir("sess-conc-dl")
    const stateDir = tempDir("sess-conc-state")
    const first = yield* open(stateDir, { downloadDir: dir, maxActiveDownloads: 2 })
    const session = first.session
    const problems: Array<string> = []
    const log: Array<{ readonly op: Op; readonly outcome: Outcome }> = []
    const run = (op: Op): Effect.Effect<void> => {
      const ref = "t" in op ? hexOf(torrents[op.t]!) : ""
      const command: Effect.Effect<unknown, Session.SessionError> = (() => {
        switch (op._tag) {
          case "add":
            return session.add({ _tag: "Metainfo", bytes: torrents[op.t]!.bytes }, {
              paused: op.paused,
              peers: [`127.0.0.1:${ports[op.t]}`]
            })
          case "pause":
            return session.pause(ref)
          case "resume":
            return session.resume(ref, { now: op.now })
          case "remove":
            return session.remove(ref, { deleteData: op.deleteData })
          case "files":
          {
            const file = op.file % torrents[op.t]!.metainfo.files.length
            return session.setFiles(ref, op.wanted ? { wanted: [file] } : { unwanted: [file] })
          }
          case "move":
            return session.queueMove(ref, op.to)
          case "slots":
            return session.updateSettings({ maxActiveDownloads: op.n })
          case "verify":
            return session.verify(ref)
        }
      })()
      return command.pipe(
        Effect.map((r): Outcome => (op._tag === "add" && (r as TorrentInfo.Added).duplicate ? "duplicate" : "ok")),
        Effect.catchAll((e) =>
          Effect.sync((): Outcome => {
            // expected refusals: a torrent another fiber removed (or never added), unwanting its last wanted file
            if (e.reason === "not-found") return "not-found"
            if (op._tag === "files" && e.reason === "invalid-argument" && /no file of the torrent is wanted/.test(e.message)) {
              return "refused"
            }
            problems.push(`${JSON.stringify(op)}: ${e.reason}: ${e.message}`)
            return "refused"
          })
        ),
        // Commands are serialized by the session's lock; each is logged as its fiber resumes, before the fiber can
        // yield (no op budget: see `fiber`), so the log is in the order the lock ran them.
        Effect.tap((outcome) => Effect.sync(() => void log.push({ op, outcome }))),
        Effect.asVoid
      )
    }
    // Each fiber waits for the scheduler before each command; the scheduler releases one waiting command at a time.
    const fiber = (ops: ReadonlyArray<Op>) =>
      Effect.forEach(ops, (op) =>
        Effect.promise(() => s.schedule(Promise.resolve(JSON.stringify(op)))).pipe(Effect.zipRight(run(op))), {
        discard: true
      }).pipe(Effect.locally(FiberRef.currentMaxOpsBeforeYield, Number.MAX_SAFE_INTEGER))
    const all = Effect.runPromise(Effect.all(lists.map(fiber), { concurrency: "unbounded", discard: true }))
    yield* Effect.promise(() => s.waitFor(all))
    expect(problems, `${problems.join("\n")}\n${String(s)}`).toEqual([])
    // The model, folded over the log: which torrents are there, paused or not, and which files are wanted; every
    // outcome must agree with it (a duplicate add only while present, not-found only while absent).
    const model = new Map<number, { paused: boolean; wanted: Array<boolean> }>()
    for (const { op, outcome } of log) {
      if (!("t" in op)) continue
      const m = model.get(op.t)
      const agrees = outcome === "not-found" ? m === undefined : outcome === "duplicate" ? m !== undefined : op._tag === "add" || m !== undefined
      if (!agrees) problems.push(`${JSON.stringify(op)} -> ${outcome}, but the torrent was ${m === undefined ? "absent" : "present"}`)
      if (outcome !== "ok") continue
      const files = torrents[op.t]!.metainfo.files.length
      if (op._tag === "add") model.set(op.t, { paused: op.paused, wanted: Array.from({ length: files }, () => true) })
      else if (op._tag === "remove") model.delete(op.t)
      else if (op._tag === "pause" && m !== undefined) m.paused = true
      else if (op._tag === "resume" && m !== undefined) m.paused = false
      else if (op._tag === "files" && m !== undefined) m.wanted[op.file % files] = op.wanted
    }
    expect(problems, `${problems.join("\n")}\n${String(s)}`).toEqual([])

    const before = yield* session.list
    expect(new Set(before.map((x) => x.id)).size).toBe(before.length)
    expect(new Set(before.map((x) => x.infoHash)).size).toBe(before.length)
    expect(before.filter((x) => x.state === "error").map((x) => [x.name, x.error]), String(s)).toEqual([])
    const details = yield* Effect.forEach(before, (x) => session.get(x.id))
    const expectedShape = [...model].map(([k, m]) => ({ infoHash: hexOf(torrents[k]!), paused: m.paused, wanted: m.wanted }))
      .sort((a, b) => a.infoHash.localeCompare(b.infoHash))
    const actualShape = details.map((d) => ({ infoHash: d.infoHash, paused: d.state === "paused", wanted: d.files.map((f) => f.wanted) }))
      .sort((a, b) => a.infoHash.localeCompare(b.infoHash))
    expect(actualShape, String(s)).toEqual(expectedShape)
    const shape = (d: TorrentInfo.Detail) => ({
      id: d.id,
      infoHash: d.infoHash,
      paused: d.state === "paused",
      wanted: d.files.map((f) => f.wanted)
    })
    // As `kill -9` would leave it: every command persisted what it changed before it returned.
    const crashed = `${stateDir}-crash`
    Fs.cpSync(stateDir, crashed, { recursive: true })
    yield* first.close
    const fromCrash = yield* open(crashed, { downloadDir: dir })
    const recovered = yield* Effect.forEach(yield* fromCrash.session.list, (x) => fromCrash.session.get(x.id))
    expect(recovered.map(shape), `after a crash\n${String(s)}`).toEqual(details.map(shape))
    yield* fromCrash.close

    // A restart brings back the same torrents, ids, paused state and selection.
    const second = yield* open(stateDir, { downloadDir: dir })
    const after = yield* Effect.forEach(yield* second.session.list, (x) => second.session.get(x.id))
    expect(after.map(shape), String(s)).toEqual(details.map(shape))
    // Resumed, each completes: its wanted files byte-identical.
    yield* Effect.forEach(after, (d) => second.session.resume(d.id, { now: true }), { discard: true })
    yield* allSeeding(second.session)
    for (const d of after) {
      const built = torrents.find((b) => hexOf(b) === d.infoHash)!
      d.files.forEach((f, i) => {
        if (!f.wanted) return
        const bytes = Fs.readFileSync(Path.join(dir, ...built.metainfo.files[i]!.path))
        expect(Buffer.compare(bytes, Buffer.from(built.files[i]!)), `${f.path}\n${String(s)}`).toBe(0)
      })
    }
    checked += after.length
    yield* second.close
    Fs.rmSync(dir, { recursive: true, force: true })
    Fs.rmSync(stateDir, { recursive: true, force: true })
    Fs.rmSync(crashed, { recursive: true, force: true })
  })

describe("Session under concurrent commands (fc.scheduler)", () => {
  it.live("any order of adds, pauses, resumes, removals, selections and queue changes leaves a consistent, complete session", () =>
    Effect.gen(function*() {
      const started = yield* Effect.promise(() => Promise.all(torrents.map((b) => seed(b))))
      seeders.push(...started)
      const ports = started.map((x) => x.port)
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(
            FastCheck.scheduler(),
            FastCheck.array(FastCheck.array(opArb, { minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 3 }),
            (s, lists) => Effect.runPromise(runCase(ports, s, lists))
          ),
          { numRuns: Number(process.env["SESSION_RUNS"] ?? 25), seed: Number(process.env["SESSION_SEED"] ?? 20261205) }
        )
      )
      // not vacuous: most cases end with torrents that went through the restart and completed
      expect(checked).toBeGreaterThan(10)
    }), { timeout: 600_000 })
})
