/**
 * The many-torrents session (SessionLive.ts) against in-process seeders on loopback: adding, the queue, pause and
 * resume, removal with and without data, file selection, seed goals, failures, the watch folder, settings, and a
 * restart that brings every torrent back from the state directory without fetching verified pieces again. Waits are
 * on the session's own events, bounded only as a safety net.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
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
  build({
    name,
    pieceLength: 16384,
    files: sizes.map((length, i) => ({ path: [`d${i % 2}`, `f${i}.bin`], length }))
  })
const a = multi("alpha", [40_000, 1_000, 70_001])
const b = multi("beta", [90_000, 33_333])
const c = multi("gamma", [120_000])
// Files on piece boundaries: deselecting one leaves no piece half-stored (those are fetched again after a restart:
// no part file yet, Storage.ts).
const aligned = multi("delta", [32_768, 16_384, 49_152])

const started = async (built: Built, options: Parameters<typeof seed>[1] = {}) => {
  const s = await seed(built, options)
  seeders.push(s)
  return s
}

/** A session over a fresh client, in its own scope (closed by `close`, as a daemon stops). */
const open = (stateDir: string, settings: Partial<TorrentInfo.Settings> = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      SessionLive.layer({ stateDir, settings, watchInterval: "100 millis" }).pipe(
        Layer.provide(testClient({ stateDir }))
      ),
      scope
    )
    const session = yield* Effect.provide(Session.Session, context)
    return { session, close: Scope.close(scope, Exit.void) }
  })

/** Waits (bounded) for the first event `pick` returns something for. */
const waitFor = <A>(s: Session.SessionShape, pick: (e: TorrentInfo.SessionEvent) => A | undefined, what: string) =>
  s.events.pipe(
    Stream.filterMap((e) => Option.fromNullable(pick(e))),
    Stream.runHead,
    Effect.flatMap((o) => o),
    Effect.timeoutFail({ duration: Duration.seconds(30), onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

/** Waits until torrent `id` has state `state` (checking the current state first). */
const waitState = (s: Session.SessionShape, id: number, state: TorrentInfo.State) =>
  Effect.gen(function*() {
    const waiting = yield* Effect.fork(
      waitFor(s, (e) => (e._tag === "Changed" && e.torrent.id === id && e.torrent.state === state ? true : undefined), `${id} ${state}`)
    )
    yield* Effect.yieldNow()
    if ((yield* s.get(id)).state === state) return
    yield* waiting.await.pipe(Effect.flatten)
  })

const bytesOf = (built: Built, dir: string) =>
  built.metainfo.files.map((f) => {
    const p = Path.join(dir, ...f.path)
    return Fs.existsSync(p) ? Buffer.from(Fs.readFileSync(p)).toString("hex") : undefined
  })
const expected = (built: Built) => built.files.map((f) => Buffer.from(f).toString("hex"))

describe("Session: many torrents in one client", () => {
  it.live("adds torrents, downloads them all byte-identical, then seeds; a duplicate is said, not added", () =>
    Effect.gen(function*() {
      const [sa, sb] = yield* Effect.promise(() => Promise.all([started(a), started(b)]))
      const dir = tempDir("sess-dl")
      const { close, session } = yield* open(tempDir("sess-state"), { downloadDir: dir })
      const first = yield* session.add({ _tag: "Metainfo", bytes: a.bytes }, { peers: [`127.0.0.1:${sa!.port}`] })
      const second = yield* session.add({ _tag: "Metainfo", bytes: b.bytes }, { peers: [`127.0.0.1:${sb!.port}`] })
      expect(first.duplicate).toBe(false)
      expect(second.id).not.toBe(first.id)
      yield* waitState(session, first.id, "seeding")
      yield* waitState(session, second.id, "seeding")
      expect(bytesOf(a, dir)).toEqual(expected(a))
      expect(bytesOf(b, dir)).toEqual(expected(b))
      const again = yield* session.add({ _tag: "Metainfo", bytes: a.bytes })
      expect(again).toEqual({ ...first, duplicate: true })
      const list = yield* session.list
      expect(list.map((t) => [t.name, t.state, t.progress, t.complete])).toEqual([
        ["alpha", "seeding", 1, true],
        ["beta", "seeding", 1, true]
      ])
      const detail = yield* session.get(first.infoHash)
      expect(detail.files.map((f) => [f.path, f.length, f.wanted])).toEqual([
        ["alpha/d0/f0.bin", 40_000, true],
        ["alpha/d1/f1.bin", 1_000, true],
        ["alpha/d0/f2.bin", 70_001, true]
      ])
      expect((yield* Effect.flip(session.get("0".repeat(40)))).reason).toBe("not-found")
      yield* close
    }))

  it.live("the queue: one download at a time; the next starts when the first completes; pause and resume", () =>
    Effect.gen(function*() {
      const [sa, sb] = yield* Effect.promise(() => Promise.all([started(a, { blockDelayMs: 20 }), started(b)]))
      const dir = tempDir("sess-queue")
      const { close, session } = yield* open(tempDir("sess-state"), { downloadDir: dir, maxActiveDownloads: 1 })
      const first = yield* session.add({ _tag: "Metainfo", bytes: a.bytes }, { peers: [`127.0.0.1:${sa!.port}`] })
      const second = yield* session.add({ _tag: "Metainfo", bytes: b.bytes }, { peers: [`127.0.0.1:${sb!.port}`] })
      expect((yield* session.get(second.id)).state).toBe("queued")
      yield* session.pause(first.id)
      expect((yield* session.get(first.id)).state).toBe("paused")
      // The slot freed: the second runs and completes.
      yield* waitState(session, second.id, "seeding")
      expect((yield* session.get(first.id)).state).toBe("paused")
      yield* session.resume(first.id)
      yield* waitState(session, first.id, "seeding")
      expect(bytesOf(a, dir)).toEqual(expected(a))
      yield* close
    }))

  it.live("remove: without data the files stay; with data the files and the directories they made go", () =>
    Effect.gen(function*() {
      const sa = yield* Effect.promise(() => started(a))
      const dir = tempDir("sess-rm")
      Fs.writeFileSync(Path.join(dir, "someone-elses.txt"), "keep me")
      const stateDir = tempDir("sess-state")
      const { close, session } = yield* open(stateDir, { downloadDir: dir })
      const t = yield* session.add({ _tag: "Metainfo", bytes: a.bytes }, { peers: [`127.0.0.1:${sa.port}`] })
      yield* waitState(session, t.id, "seeding")
      yield* session.remove(t.id, { deleteData: true })
      expect(Fs.readdirSync(dir)).toEqual(["someone-elses.txt"])
      expect(Fs.readdirSync(stateDir).filter((f) => f.startsWith(t.infoHash))).toEqual([])
      expect(yield* session.list).toEqual([])
      const again = yield* session.add({ _tag: "Metainfo", bytes: a.bytes }, { peers: [`127.0.0.1:${sa.port}`] })
      yield* waitState(session, again.id, "seeding")
      yield* session.remove(again.infoHash)
      expect(bytesOf(a, dir)).toEqual(expected(a))
      yield* close
    }))

  it.live("a restart brings every torrent back: ids, paused state, selection; complete ones seed without fetching again", () =>
    Effect.gen(function*() {
      const [sa, sb] = yield* Effect.promise(() => Promise.all([started(aligned), started(b)]))
      const dir = tempDir("sess-restart")
      const stateDir = tempDir("sess-state")
      const one = yield* open(stateDir, { downloadDir: dir })
      const ta = yield* one.session.add({ _tag: "Metainfo", bytes: aligned.bytes }, { peers: [`127.0.0.1:${sa!.port}`], files: [0, 2] })
      const tb = yield* one.session.add({ _tag: "Metainfo", bytes: b.bytes }, { peers: [`127.0.0.1:${sb!.port}`], paused: true })
      yield* waitState(one.session, ta.id, "seeding")
      const before = yield* one.session.list
      yield* one.close
      const served = sa!.served()

      const two = yield* open(stateDir, { downloadDir: dir })
      const after = yield* two.session.list
      expect(after.map((t) => [t.id, t.infoHash, t.name, t.complete])).toEqual(before.map((t) => [t.id, t.infoHash, t.name, t.complete]))
      expect((yield* two.session.get(tb.id)).state).toBe("paused")
      const files = (yield* two.session.get(ta.id)).files
      expect(files.map((f) => f.wanted)).toEqual([true, false, true])
      yield* waitState(two.session, ta.id, "seeding")
      expect(sa!.served()).toBe(served) // nothing fetched again
      expect(bytesOf(aligned, dir)).toEqual([expected(aligned)[0], undefined, expected(aligned)[2]]) // unwanted: never created
      const next = yield* two.session.add({ _tag: "Metainfo", bytes: c.bytes }, { paused: true })
      expect(next.id).toBeGreaterThan(tb.id) // ids are never reused
      yield* two.close
    }))

  it.live("a failure stops the torrent with state error and its reason; resume tries again", () =>
    Effect.gen(function*() {
      const sa = yield* Effect.promise(() => started(a))
      const { close, session } = yield* open(tempDir("sess-state"), { downloadDir: "/proc/effect-torrent-test" })
      const t = yield* session.add({ _tag: "Metainfo", bytes: a.bytes }, { peers: [`127.0.0.1:${sa.port}`] })
      yield* waitState(session, t.id, "error")
      const d = yield* session.get(t.id)
      expect(d.error?.reason).toBe("storage")
      expect(d.error?.message).toMatch(/mkdir: ENOENT/)
      yield* session.resume(t.id)
      yield* waitState(session, t.id, "error")
      yield* close
    }))

  it.live("seed goal: with a seed time of 0 a completed torrent finishes (stops seeding)", () =>
    Effect.gen(function*() {
      const sa = yield* Effect.promise(() => started(a))
      const { close, session } = yield* open(tempDir("sess-state"), { downloadDir: tempDir("sess-goal"), seedTime: 0 })
      const t = yield* session.add({ _tag: "Metainfo", bytes: a.bytes }, { peers: [`127.0.0.1:${sa.port}`] })
      yield* waitState(session, t.id, "finished")
      expect((yield* session.get(t.id)).complete).toBe(true)
      yield* close
    }))

  it.live("the watch folder: a .torrent dropped there is added and renamed .added; garbage is renamed .invalid", () =>
    Effect.gen(function*() {
      const watch = tempDir("sess-watch")
      const { close, session } = yield* open(tempDir("sess-state"), { downloadDir: tempDir("sess-w"), watchDir: watch })
      const added = yield* Effect.fork(waitFor(session, (e) => (e._tag === "Added" ? e.torrent : undefined), "Added"))
      Fs.writeFileSync(Path.join(watch, "x.torrent"), c.bytes)
      Fs.writeFileSync(Path.join(watch, "junk.torrent"), "not bencode")
      const t = yield* added.await.pipe(Effect.flatten)
      expect(t.name).toBe("gamma")
      yield* Effect.repeat(Effect.sync(() => Fs.readdirSync(watch).sort()), {
        until: (names) => names.length === 2 && names.every((n) => !n.endsWith(".torrent")),
        schedule: Schedule.spaced("50 millis")
      }).pipe(Effect.timeout("10 seconds"))
      expect(Fs.readdirSync(watch).sort()).toEqual(["junk.torrent.invalid", "x.torrent.added"])
      yield* close
    }))

  it.live("settings: validated, applied (queue sizes), kept across a restart; invalid input is a typed error", () =>
    Effect.gen(function*() {
      const stateDir = tempDir("sess-state")
      const one = yield* open(stateDir, { downloadDir: tempDir("sess-set") })
      expect((yield* Effect.flip(one.session.updateSettings({ maxActiveDownloads: 0 }))).reason).toBe("invalid-argument")
      const next = yield* one.session.updateSettings({ maxActiveDownloads: 2, uploadLimit: 1000 })
      expect(next.maxActiveDownloads).toBe(2)
      yield* one.close
      const two = yield* open(stateDir, {})
      const s = yield* two.session.settings.get
      expect([s.maxActiveDownloads, s.uploadLimit]).toEqual([2, 1000])
      expect((yield* Effect.flip(two.session.add({ _tag: "Metainfo", bytes: new Uint8Array([1, 2, 3]) }))).reason).toBe(
        "invalid-source"
      )
      expect((yield* Effect.flip(two.session.add({ _tag: "Magnet", uri: "magnet:?dn=nothing" }))).reason).toBe("invalid-source")
      yield* two.close
    }))

  it.live("settings: LSD, transport and port mapping say what the client runs with; a patch may repeat, not change them", () =>
    Effect.gen(function*() {
      const stateDir = tempDir("sess-fixed")
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        SessionLive.layer({ stateDir, settings: { downloadDir: tempDir("sess-fixed-dl"), lsd: true } }).pipe(
          Layer.provide(testClient({ stateDir, transport: "both" }))
        ),
        scope
      )
      const session = yield* Effect.provide(Session.Session, context)
      // the client's options win over anything given or saved (this client has no LSD, no port mapping)
      const s = yield* session.settings.get
      expect([s.lsd, s.transport, s.portMapping]).toEqual([false, "both", false])
      expect((yield* session.updateSettings({ transport: "both", lsd: false, maxActiveSeeds: 4 })).maxActiveSeeds).toBe(4)
      const refused = yield* Effect.flip(session.updateSettings({ transport: "tcp" }))
      expect([refused.reason, refused.message]).toEqual(["invalid-argument", "transport is fixed when the daemon starts (its flags)"])
      yield* Scope.close(scope, Exit.void)
    }))
})
