/**
 * effect-torrent's own web UI (src/webui/, built here by scripts/webui.mjs exactly as `npm run build` builds it)
 * served at `/` by our server over the real session, used in headless Chromium as a person uses it, behind the
 * daemon's credentials (the browser's password prompt answered): the empty list; a `.torrent` picked in the add
 * dialog downloads from a python3-libtorrent seeder found through opentracker while its details show the seeder as
 * a peer, the tracker's announce and the pieces bar, and reaches 100 % (seeding) in the list; a magnet link typed
 * in the dialog does the same with a second seeder; its file's stream link answers Range requests from the page
 * with the seeder's bytes (a seek to the middle and to the end); a `.torrent` dropped on the page is added, one of
 * its files unticked (the session stops wanting it) and the other's priority raised; a URL the daemon cannot fetch
 * is reported on the page; Verify; pause and resume with the row's button and with `p`; the magnet's torrent
 * removed with its data (the confirmation ticked: the files are gone); the global download limit changed with `l`;
 * the filter (`/`); the help with `?`; the dark theme from the system and from `t`; a phone's width (390 px) with
 * no horizontal scrolling, the details covering the list and their tables as cards. The page opens no alert and
 * logs no error (but the refused URL's 4xx). The built CLI's daemon serves it by default. Screenshots go to
 * .tmp/artifacts/webui/. Before that, the file serving: types, cache headers, gzip, ETag, the page's policy,
 * credentials.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import { buildWebUi, type WebUiBuild } from "../../scripts/webui.mjs"
import * as Auth from "../../src/api/Auth.ts"
import * as Security from "../../src/api/Security.ts"
import * as Server from "../../src/api/Server.ts"
import * as WebUi from "../../src/api/WebUi.ts"
import { Session } from "../../src/session/Session.ts"
import * as SessionLive from "../../src/session/SessionLive.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import * as Daemon from "../support/daemon.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"
import { raw, start } from "./support.ts"
import * as Browser from "./TransmissionBrowser.ts"
import { cleanup } from "./TransmissionSupport.ts"

const KiB = 1024
const { children, stops, dir } = cleanup()

let ui: WebUiBuild
beforeAll(async () => {
  ui = await buildWebUi({ outdir: dir("webui-build") })
})
afterAll(() => {
  // The bundle's size, as docs/WEBUI.md reports it.
  if (ui !== undefined) console.log(`web UI bundle: ${JSON.stringify(ui.sizes)}`)
})

describe("serving the web UI", () => {
  it("Accept-Encoding: gzip unless refused with q=0", () => {
    expect(WebUi.acceptsGzip("gzip, deflate, br")).toBe(true)
    expect(WebUi.acceptsGzip("br;q=1.0, gzip;q=0.5")).toBe(true)
    expect(WebUi.acceptsGzip("*")).toBe(true)
    expect(WebUi.acceptsGzip("gzip;q=0")).toBe(false)
    expect(WebUi.acceptsGzip("deflate")).toBe(false)
    expect(WebUi.acceptsGzip(undefined)).toBe(false)
  })

  it.scopedLive("the page and its assets: types, cache headers, gzip, ETag, the page's policy (the API keeps its sandbox)", () =>
    Effect.gen(function*() {
      const { port } = yield* start({ webUi: ui.outdir })
      const index = yield* raw(port, { path: "/" })
      expect([index.status, index.headers["content-type"], index.headers["cache-control"]]).toEqual([200, "text/html; charset=utf-8", "no-cache"])
      expect(index.text).toContain(`/webui/${ui.js}`)
      expect(index.text).toContain(`/webui/${ui.css}`)
      expect(index.headers["content-security-policy"]).toBe(WebUi.contentSecurityPolicy)
      expect(index.headers["x-frame-options"]).toBe("DENY")
      const again = yield* raw(port, { path: "/", headers: { "if-none-match": String(index.headers["etag"]) } })
      expect([again.status, again.body.length]).toEqual([304, 0])

      const js = yield* raw(port, { path: `/webui/${ui.js}`, headers: { "accept-encoding": "gzip" } })
      expect([js.status, js.headers["content-type"], js.headers["cache-control"], js.headers["content-encoding"]])
        .toEqual([200, "text/javascript; charset=utf-8", WebUi.immutable, "gzip"])
      expect(Zlib.gunzipSync(js.body).equals(Fs.readFileSync(Path.join(ui.outdir, ui.js)))).toBe(true)
      const plain = yield* raw(port, { path: `/webui/${ui.js}` })
      expect([plain.headers["content-encoding"], plain.body.equals(Fs.readFileSync(Path.join(ui.outdir, ui.js)))]).toEqual([undefined, true])
      const css = yield* raw(port, { path: `/webui/${ui.css}` })
      expect([css.status, css.headers["content-type"]]).toEqual([200, "text/css; charset=utf-8"])

      expect((yield* raw(port, { path: "/webui/nope.js" })).status).toBe(404)
      expect((yield* raw(port, { path: "/webui/../package.json" })).status).toBe(404)
      const api = yield* raw(port, { path: "/api/torrents" })
      expect(api.headers["content-security-policy"]).toMatch(/sandbox/)
    }))

  it.scopedLive("not built: `/` says so; not configured: `/` is no route", () =>
    Effect.gen(function*() {
      const missing = yield* start({ webUi: Path.join(dir("webui-none"), "absent") })
      const r = yield* raw(missing.port, { path: "/" })
      expect([r.status, r.text]).toEqual([404, expect.stringContaining("npm run build")])
      const none = yield* start({})
      expect((yield* raw(none.port, { path: "/" })).status).toBe(404)
    }))

  it.scopedLive("with credentials: the page and its assets answer 401 with a Basic challenge, then 200", () =>
    Effect.gen(function*() {
      const auth = yield* Auth.addUser(Auth.empty, "alice", "secret")
      const { port } = yield* start({ auth, webUi: ui.outdir })
      for (const path of ["/", `/webui/${ui.js}`]) {
        // A browser asking for a page is challenged with Basic alone: Chromium reads only a line's first challenge
        const none = yield* raw(port, { path, headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" } })
        expect([path, none.status, none.headers["www-authenticate"]]).toEqual([path, 401, Security.browserChallenge])
        const ok = yield* raw(port, { path, headers: { authorization: `Basic ${Buffer.from("alice:secret").toString("base64")}` } })
        expect([path, ok.status]).toEqual([path, 200])
      }
    }))
})

describe("the daemon (the built CLI, dist/cli.mjs) serves the UI built beside it", () => {
  it("at / by default; `--web-ui none` leaves it out", async () => {
    const served = await Daemon.start(children, { downloadDir: dir("webui-cli-out"), stateDir: dir("webui-cli-state") })
    expect(served.log()).toContain("(web UI at /)")
    const page = await fetch(`${served.url}/`)
    const html = await page.text()
    expect([page.status, page.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"])
    const script = /src="(\/webui\/app-[^"]+\.js)"/.exec(html)?.[1]
    expect(script).toBeDefined()
    const js = await fetch(`${served.url}${script}`)
    expect([js.status, js.headers.get("cache-control")]).toEqual([200, WebUi.immutable])
    served.signal("SIGTERM")
    expect((await served.exited).code).toBe(0)

    const without = await Daemon.start(children, {
      downloadDir: dir("webui-cli-out2"),
      stateDir: dir("webui-cli-state2"),
      extra: ["--web-ui", "none"]
    })
    expect(without.log()).not.toContain("web UI")
    expect((await fetch(`${without.url}/`)).status).toBe(404)
    expect((await fetch(`${without.url}/api/torrents`)).status).toBe(200)
    without.signal("SIGTERM")
    expect((await without.exited).code).toBe(0)
  }, 60_000)
})

const enabled = Browser.shouldRun("the web UI in Chromium") && Real.shouldRun("libtorrent") &&
  Opentracker.shouldRun("the web UI in Chromium")

/** The row of the torrent named `name`, as a selector once marked. */
const row = (name: string) => `[data-et-row=${JSON.stringify(name)}]`
const markRow = (name: string) => `(() => {
  const li = [...document.querySelectorAll("#list li.torrent")].find((e) => e.querySelector(".t-name")?.textContent === ${JSON.stringify(name)})
  if (li === undefined) return false
  li.setAttribute("data-et-row", ${JSON.stringify(name)})
  return true
})()`
const rowText = (name: string, part: string) =>
  `(document.querySelector(${JSON.stringify(`${row(name)} ${part}`)})?.textContent ?? "")`
const names = `JSON.stringify([...document.querySelectorAll("#list li.torrent .t-name")].map((e) => e.textContent).sort())`
const visible = (selector: string) => `(() => {
  const e = document.querySelector(${JSON.stringify(selector)})
  return e !== null && e.getBoundingClientRect().width > 0 && getComputedStyle(e).visibility !== "hidden"
})()`
/** The page's background as [r, g, b]. */
const background = `getComputedStyle(document.body).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)`

describe.runIf(enabled)("the web UI in headless Chromium, over the real session", () => {
  let album: Built
  let movie: Built
  // never seeded: dropped on the page, one of its files unticked
  const dropped = build({
    name: "dropped",
    pieceLength: 16 * KiB,
    files: [{ path: ["a.bin"], length: 50_000 }, { path: ["b.bin"], length: 60_000 }]
  })
  const seeders = new Map<Built, Real.RealSeeder>()
  let tracker: Opentracker.Opentracker

  beforeAll(async () => {
    const pre = [
      build({
        name: "album",
        pieceLength: 32 * KiB,
        files: [{ path: ["one.bin"], length: 300 * KiB + 7 }, { path: ["two.bin"], length: 200 * KiB + 3 }]
      }),
      build({ name: "movie.bin", pieceLength: 32 * KiB, files: [{ path: ["movie.bin"], length: 384 * KiB + 11 }], single: true })
    ]
    tracker = await Opentracker.start(pre.map(Tracked.hexOf))
    stops.push(tracker.stop)
    ;[album, movie] = pre.map((b) => Tracked.withAnnounce(b, tracker.httpUrl)) as [Built, Built]
    // album: ~8 s at 64 KiB/s, long enough to look at its peer while it downloads
    for (const [b, upLimit] of [[album, 64 * KiB], [movie, 256 * KiB]] as const) {
      const s = await Real.libtorrent(b, { upLimit })
      stops.push(s.stop)
      seeders.set(b, s)
    }
    await Promise.all([album, movie].map((b) => Tracked.untilSeeders(tracker.port, b, 1)))
  }, 120_000)

  it.scopedLive("adds, downloads, inspects, streams, selects, pauses, removes with data, limits; phone width, dark theme", () =>
    Effect.gen(function*() {
      const stateDir = dir("webui-state")
      const out = dir("webui-out")
      const shots = Browser.artifactsDir("webui")
      const auth = yield* Auth.addUser(Auth.empty, "alice", "secret")
      const session = yield* Layer.build(
        SessionLive.layer({ stateDir, settings: { downloadDir: out } }).pipe(Layer.provide(Tracked.trackedClient({ stateDir })))
      )
      const sessionService = yield* Effect.provide(Session, session)
      const { url } = yield* Server.start({ port: 0, eventLoopLag: false, auth, webUi: ui.outdir }).pipe(Effect.provide(session))
      const files = dir("webui-torrents")
      const albumFile = Path.join(files, "album.torrent")
      const droppedFile = Path.join(files, "dropped.torrent")
      Fs.writeFileSync(albumFile, album.bytes)
      Fs.writeFileSync(droppedFile, dropped.bytes)

      const browser = yield* Effect.acquireRelease(Effect.promise(() => Browser.launch()), (b) => Effect.promise(() => b.close()))
      const step = <A>(f: () => Promise<A>) => Effect.promise(f)
      const shot = (name: string) => step(() => browser.screenshot(Path.join(shots, `${name}.png`)))
      const until = <A, E>(what: string, probe: Effect.Effect<A, E>, done: (a: A) => boolean): Effect.Effect<A> =>
        Effect.zipRight(Effect.sleep("100 millis"), probe).pipe(
          Effect.repeat({ until: done }),
          Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`${what}: not within 30 s`) }),
          Effect.orDie
        )
      const byName = (name: string) => Effect.map(sessionService.list, (l) => l.find((t) => t.name === name))

      // Behind the daemon's credentials: the browser asks, the person answers; the empty list.
      yield* step(() => browser.authenticate("alice", "secret"))
      yield* step(() => browser.setColorScheme("light"))
      yield* step(() => browser.navigate(`${url}/`))
      yield* step(() => browser.waitFor("the empty list", `!document.querySelector("#empty").hidden`))
      yield* shot("1-empty")

      // A .torrent picked in the add dialog.
      yield* step(() => browser.click("#add-button"))
      yield* step(() => browser.waitFor("the add dialog", `document.querySelector("#add-dialog").open`))
      yield* step(() => browser.setFiles("#add-file", [albumFile]))
      yield* step(() => browser.click("#add-submit"))
      yield* step(() => browser.waitFor("album listed", markRow("album")))

      // Its details while it downloads: the seeder as a peer, the tracker, the pieces.
      const albumSeeder = seeders.get(album)!
      yield* step(() => browser.click(`${row("album")} .t-name`))
      yield* step(() => browser.waitFor("the details", `${visible("#detail")} && document.querySelector("#detail-name").textContent === "album"`))
      yield* step(() => browser.click("#tab-peers"))
      const peer = yield* step(() =>
        browser.waitFor<{ client: string; encrypted: string; flags: string; via: string; source: string }>(
          "the seeder in the peers tab, sending",
          `(() => {
            const tr = document.querySelector('#panel-peers tr[data-address="127.0.0.1:${albumSeeder.port}"]')
            // D: we download from it (interested, unchoked), once the connection has settled
            return tr === null || !tr.querySelector(".p-flags").textContent.startsWith("D") ? null : {
              client: tr.querySelector(".p-client").textContent,
              encrypted: tr.querySelector(".p-encrypted").textContent,
              flags: tr.querySelector(".p-flags").textContent,
              via: tr.querySelector(".p-transport").textContent,
              source: tr.querySelector(".p-source").textContent
            }
          })()`
        )
      )
      expect(peer.client).toMatch(/libtorrent/i)
      expect(peer.encrypted).toMatch(/^(yes \(RC4\)|no.*)$/)
      expect(peer.flags).toMatch(/^D/)
      // dialled over TCP, its address from the tracker's answer
      expect([peer.via, peer.source]).toEqual(["TCP", "tracker"])
      yield* shot("2-peers")
      yield* step(() => browser.click("#tab-trackers"))
      const announced = yield* step(() =>
        browser.waitFor<string>(
          "the tracker's announce",
          `(() => {
            const tr = document.querySelector('#panel-trackers tr[data-url="${tracker.httpUrl}"]')
            return tr !== null && tr.dataset.status === "working" ? tr.querySelector(".tr-last").textContent : null
          })()`
        )
      )
      expect(announced).toMatch(/ago|now/)
      yield* step(() => browser.click("#tab-pieces"))
      yield* step(() => browser.waitFor("the pieces bar", `document.querySelector("#pieces").dataset.pieces === "${album.metainfo.pieceCount}"`))
      yield* shot("3-pieces")

      // It reaches 100 % in the list (from the event stream), and the bar is full.
      yield* step(() =>
        browser.waitFor("album at 100 %", `${rowText("album", ".t-pct")} === "100.0 %" && ${rowText("album", ".t-state")} === "Seeding"`, 60_000)
      )
      yield* step(() => browser.waitFor("every piece in the bar", `document.querySelector("#pieces").dataset.have === "${album.metainfo.pieceCount}"`))
      // Verify: accepted (the page says so), and the torrent is complete and seeding afterwards.
      const verified = (yield* byName("album"))!
      yield* step(() => browser.click("#detail-verify"))
      yield* step(() => browser.waitFor("the notice", `document.querySelector("#status").textContent === "Verifying album"`))
      yield* until("album checked and seeding", byName("album"), (t) => t?.state === "seeding" && t.haveSize === verified.wantedSize)
      yield* step(() => browser.click("#tab-files"))
      yield* step(() => browser.waitFor("both files done", `[...document.querySelectorAll("#panel-files .f-progress")].map((e) => e.textContent).join() === "100.0 %,100.0 %"`))
      yield* shot("4-album-seeding")

      // A magnet link typed in the dialog.
      const movieSeeder = seeders.get(movie)!
      const magnet = `magnet:?xt=urn:btih:${Tracked.hexOf(movie)}&dn=movie.bin&tr=${encodeURIComponent(tracker.httpUrl)}&x.pe=127.0.0.1:${movieSeeder.port}`
      yield* step(() => browser.press("Escape"))
      yield* step(() => browser.waitFor("the details closed", `document.querySelector("#detail").hidden`))
      yield* step(() => browser.press("a"))
      yield* step(() => browser.waitFor("the add dialog", `document.querySelector("#add-dialog").open`))
      yield* step(() => browser.click("#add-link"))
      yield* step(() => browser.type(magnet))
      yield* step(() => browser.click("#add-submit"))
      yield* step(() => browser.waitFor("movie.bin listed", markRow("movie.bin")))
      yield* step(() =>
        browser.waitFor("movie.bin at 100 %", `${rowText("movie.bin", ".t-pct")} === "100.0 %" && ${rowText("movie.bin", ".t-state")} === "Seeding"`, 60_000)
      )
      const movieOnDisk = Path.join(out, "movie.bin")
      expect(Fs.readFileSync(movieOnDisk).equals(Fs.readFileSync(Path.join(movieSeeder.dataDir, "movie.bin")))).toBe(true)

      // Its file's stream link, seeked from the page: the middle, then the last bytes.
      yield* step(() => browser.click(`${row("movie.bin")} .t-name`))
      yield* step(() => browser.waitFor("its files", `document.querySelector("#detail-name").textContent === "movie.bin" && document.querySelector("#panel-files .f-open") !== null`))
      const href = yield* step(() => browser.evaluate<string>(`document.querySelector("#panel-files .f-open").href`))
      expect(href).toBe(`${url}/api/torrents/${Tracked.hexOf(movie)}/files/0`)
      const seek = (range: string) =>
        step(() =>
          browser.evaluate<{ status: number; contentRange: string | null; base64: string }>(`(async () => {
            const r = await fetch(document.querySelector("#panel-files .f-open").href, { headers: { range: ${JSON.stringify(range)} } })
            const bytes = new Uint8Array(await r.arrayBuffer())
            let s = ""
            for (const b of bytes) s += String.fromCharCode(b)
            return { status: r.status, contentRange: r.headers.get("content-range"), base64: btoa(s) }
          })()`)
        )
      const source = movie.files[0]!
      const middle = yield* seek("bytes=200000-265535")
      expect([middle.status, middle.contentRange]).toEqual([206, `bytes 200000-265535/${source.length}`])
      expect(Buffer.from(middle.base64, "base64").equals(Buffer.from(source.subarray(200000, 265536)))).toBe(true)
      const end = yield* seek("bytes=-1000")
      expect([end.status, end.contentRange]).toEqual([206, `bytes ${source.length - 1000}-${source.length - 1}/${source.length}`])
      expect(Buffer.from(end.base64, "base64").equals(Buffer.from(source.subarray(source.length - 1000)))).toBe(true)
      yield* shot("5-movie-files")

      // A .torrent dropped on the page; one of its files unticked in its details.
      yield* step(() => browser.dropFiles("#list", [droppedFile]))
      yield* step(() => browser.waitFor("dropped listed", markRow("dropped")))
      yield* step(() => browser.click(`${row("dropped")} .t-name`))
      yield* step(() => browser.click("#tab-files"))
      yield* step(() => browser.waitFor("its two files", `document.querySelector("#detail-name").textContent === "dropped" && document.querySelectorAll("#panel-files tbody tr").length === 2`))
      yield* step(() => browser.click(`#panel-files tr[data-index="1"] .f-wanted`))
      const droppedId = (yield* byName("dropped"))!.id
      const wanted = yield* until(
        "b.bin unwanted",
        Effect.map(Effect.orDie(sessionService.get(droppedId)), (d) => d.files.map((f) => f.wanted)),
        (w) => w[1] === false
      )
      expect(wanted).toEqual([true, false])
      yield* step(() => browser.waitFor("the box stays unticked", `!document.querySelector('#panel-files tr[data-index="1"] .f-wanted').checked`))
      // Its first file's priority raised from the keyboard (the select focused, ↑: normal → high).
      yield* step(() => browser.evaluate(`document.querySelector('#panel-files tr[data-index="0"] .f-priority').focus()`))
      yield* step(() => browser.press("ArrowUp"))
      const priorities = yield* until(
        "a.bin high",
        Effect.map(Effect.orDie(sessionService.get(droppedId)), (d) => d.files.map((f) => f.priority)),
        (p) => p[0] === "high"
      )
      expect(priorities).toEqual(["high", "normal"])
      yield* shot("6-dropped-files")
      yield* step(() => browser.click("#detail-close"))

      // A link the daemon cannot fetch: the page says why (and adds nothing).
      yield* step(() => browser.press("a"))
      yield* step(() => browser.waitFor("the add dialog", `document.querySelector("#add-dialog").open`))
      const closed = yield* Effect.promise(() => Real.freePort())
      yield* step(() => browser.type(`http://127.0.0.1:${closed}/nothing.torrent`))
      yield* step(() => browser.click("#add-submit"))
      const refused = yield* step(() =>
        browser.waitFor<string>("the refusal", `(() => { const s = document.querySelector("#status"); return !s.hidden && s.classList.contains("error") && s.textContent })()`)
      )
      expect(refused).toMatch(/^Not added: /)
      expect((yield* sessionService.list).length).toBe(3)

      // Pause with the row's button, resume with the keyboard (j/k select, p toggles).
      yield* step(() => browser.click(`${row("album")} .t-toggle`))
      yield* step(() => browser.waitFor("album paused", `${rowText("album", ".t-state")} === "Paused"`))
      expect((yield* byName("album"))?.state).toBe("paused")
      yield* step(() => browser.press("k"))
      yield* step(() => browser.press("k"))
      yield* step(() => browser.press("k"))
      yield* step(() => browser.waitFor("album selected", `document.querySelector(${JSON.stringify(row("album"))}).classList.contains("selected")`))
      yield* step(() => browser.press("p"))
      yield* step(() => browser.waitFor("album seeding again", `${rowText("album", ".t-state")} === "Seeding"`))
      yield* until("album seeding in the session", byName("album"), (t) => t?.state === "seeding")

      // Remove the magnet's torrent and its data: the confirmation ticked.
      yield* step(() => browser.click(`${row("movie.bin")} .t-remove`))
      yield* step(() => browser.waitFor("the confirmation", `document.querySelector("#remove-dialog").open`))
      yield* step(() => browser.click("#remove-data"))
      yield* step(() => browser.waitFor("the warning", `!document.querySelector("#remove-warning").hidden && document.querySelector("#remove-confirm").textContent === "Remove and delete data"`))
      yield* shot("7-confirm-remove")
      yield* step(() => browser.click("#remove-confirm"))
      yield* step(() => browser.waitFor("movie.bin gone", `${names} === '["album","dropped"]'`))
      expect((yield* sessionService.list).map((t) => t.name).sort()).toEqual(["album", "dropped"])
      yield* until("its file deleted", Effect.sync(() => Fs.existsSync(movieOnDisk)), (exists) => !exists)

      // The global download limit, from the keyboard.
      yield* step(() => browser.press("l"))
      yield* step(() => browser.waitFor("the limits dialog", `document.querySelector("#limits-dialog").open && document.querySelector("#limit-down").value === "0"`))
      yield* step(() => browser.type("500"))
      yield* step(() => browser.click("#limits-save"))
      const limited = yield* until("the limit saved", sessionService.settings.get, (s) => s.downloadLimit === 500 * KiB)
      expect([limited.downloadLimit, limited.uploadLimit]).toEqual([500 * KiB, 0])
      yield* step(() => browser.waitFor("the button says so", `document.querySelector("#limits-button").classList.contains("limited")`))

      // The shortcuts' help.
      yield* step(() => browser.press("?"))
      yield* step(() => browser.waitFor("the help", `document.querySelector("#help-dialog").open`))
      yield* step(() => browser.press("Escape"))
      yield* step(() => browser.waitFor("the help closed", `!document.querySelector("#help-dialog").open`))

      // The filter: "/" focuses it, a name part narrows the list, Esc clears it.
      yield* step(() => browser.press("/"))
      yield* step(() => browser.waitFor("the filter focused", `document.activeElement === document.querySelector("#filter")`))
      yield* step(() => browser.type("ALB"))
      const shownRows = `JSON.stringify([...document.querySelectorAll("#list li.torrent")].filter((li) => !li.hidden).map((li) => li.querySelector(".t-name").textContent))`
      yield* step(() => browser.waitFor("album alone", `${shownRows} === '["album"]' && document.querySelector("#count").textContent === "1 of 2"`))
      yield* step(() => browser.press("Escape"))
      yield* step(() => browser.waitFor("both again", `${shownRows} === '["album","dropped"]' && document.querySelector("#count").textContent === "2 torrents"`))

      // The speed graph drew what was downloaded.
      const graph = yield* step(() => browser.evaluate<{ samples: number; peak: number }>(`({ samples: Number(document.querySelector("#graph").dataset.samples), peak: Number(document.querySelector("#graph").dataset.peak) })`))
      expect(graph.samples).toBeGreaterThan(0)
      expect(graph.peak).toBeGreaterThan(0)
      yield* shot("8-light")

      // Dark: from the system, then the toggle (t) cycles dark and light over it.
      const dark = (rgb: ReadonlyArray<number>) => rgb.every((c) => c < 80)
      expect(dark(yield* step(() => browser.evaluate<Array<number>>(background)))).toBe(false)
      yield* step(() => browser.setColorScheme("dark"))
      expect(dark(yield* step(() => browser.evaluate<Array<number>>(background)))).toBe(true)
      yield* shot("9-dark")
      yield* step(() => browser.press("t"))
      yield* step(() => browser.press("t"))
      yield* step(() => browser.waitFor("light chosen", `document.documentElement.dataset.theme === "light"`))
      expect(dark(yield* step(() => browser.evaluate<Array<number>>(background)))).toBe(false)
      yield* step(() => browser.press("t"))
      yield* step(() => browser.waitFor("back to the system's", `document.documentElement.dataset.theme === undefined`))

      // A phone: nothing wider than the screen; the details cover the list.
      yield* step(() => browser.setViewport({ width: 390, height: 844, mobile: true }))
      yield* step(() => browser.waitFor("no horizontal scrolling", `document.documentElement.scrollWidth <= 390 && innerWidth === 390`))
      expect(yield* step(() => browser.evaluate<boolean>(visible(".list-head")))).toBe(false)
      yield* shot("10-phone-list")
      yield* step(() => browser.click(`${row("album")} .t-name`))
      yield* step(() => browser.waitFor("the details, full width", `document.querySelector("#detail").getBoundingClientRect().width === 390`))
      yield* step(() => browser.click("#tab-trackers"))
      yield* step(() => browser.waitFor("its trackers", `document.querySelector('#panel-trackers tr[data-url="${tracker.httpUrl}"]') !== null && !document.querySelector("#panel-trackers").hidden`))
      yield* step(() => browser.waitFor("still no horizontal scrolling", `document.documentElement.scrollWidth <= 390`))
      // its table as cards: no header row, each value labelled
      expect(yield* step(() => browser.evaluate<Array<string>>(`[
        getComputedStyle(document.querySelector("#panel-trackers thead")).display,
        document.querySelector("#panel-trackers td.tr-status").dataset.label
      ]`))).toEqual(["none", "Status"])
      yield* shot("11-phone-detail")

      // Chrome logs the one refused add (its 4xx answer) as a failed load; nothing else may appear.
      const failedAdd = /^log: Failed to load resource: the server responded with a status of 4\d\d .* http:\/\/127\.0\.0\.1:\d+\/api\/torrents$/
      expect(browser.problems().filter((p) => !failedAdd.test(p))).toEqual([])
      expect(browser.problems().filter((p) => failedAdd.test(p)).length).toBeLessThanOrEqual(1)
      // The bytes on disk: album's files are the seeder's.
      for (const f of ["one.bin", "two.bin"]) {
        expect(Fs.readFileSync(Path.join(out, "album", f)).equals(Fs.readFileSync(Path.join(albumSeeder.dataDir, "album", f))), f).toBe(true)
      }
    }), { timeout: 120_000 })
})
