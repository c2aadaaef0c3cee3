/**
 * Transmission's own web client (Debian's transmission-daemon package: /usr/share/transmission/web) served by our
 * server at /transmission/web/ over the real session, used in headless Chromium as a person uses it: the page
 * loads and lists the torrent already there; a `.torrent` is added through its upload dialog (a file picked in the
 * file input), downloads from a libtorrent seeder found through opentracker, and shows as seeding; in the inspector of
 * a paused torrent a file is unticked (the session stops wanting it); the seeding one is selected and paused with the
 * toolbar, then removed through the confirmation dialog. The page opens no alert and logs no
 * error (a Content-Security-Policy violation would be one). Screenshots go to .tmp/artifacts/transmission-web/.
 * Before that, the file serving itself: redirects, types, the policy that replaces the API's sandbox, no way out of
 * the directory, credentials.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Auth from "../../src/api/Auth.ts"
import * as Server from "../../src/api/Server.ts"
import * as TransmissionWeb from "../../src/api/TransmissionWeb.ts"
import { Session } from "../../src/session/Session.ts"
import * as SessionLive from "../../src/session/SessionLive.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"
import { raw, start } from "./support.ts"
import * as Browser from "./TransmissionBrowser.ts"
import { cleanup } from "./TransmissionSupport.ts"

const KiB = 1024
const webInstalled = Fs.existsSync(Path.join(TransmissionWeb.debianDirectory, "index.html"))
if (!webInstalled && !process.env["CI"]) {
  console.warn(`\n!!! SKIPPING Transmission's web client: ${TransmissionWeb.debianDirectory} is missing (apt-get install transmission-daemon) !!!\n`)
}
const webRuns = webInstalled || process.env["CI"] !== undefined

describe("serving the web client's files", () => {
  it("paths: under the prefix, inside the directory, index.html for the directory", () => {
    const root = "/srv/web"
    expect(TransmissionWeb.fileOf(root, "/transmission/web/")).toBe("/srv/web/index.html")
    expect(TransmissionWeb.fileOf(root, "/transmission/web/javascript/main.js")).toBe("/srv/web/javascript/main.js")
    expect(TransmissionWeb.fileOf(root, "/transmission/web/style/")).toBe("/srv/web/style/index.html")
    expect(TransmissionWeb.fileOf(root, "/transmission/web/a%20b.png")).toBe("/srv/web/a b.png")
    for (const bad of ["/transmission/web/../x", "/transmission/web/%2e%2e/x", "/transmission/web/a/..%2F..%2Fx", "/transmission/web/%00", "/transmission/web/%zz", "/elsewhere/x", "/transmission/web/..\\x"]) {
      expect([bad, TransmissionWeb.fileOf(root, bad)]).toEqual([bad, undefined])
    }
    expect(TransmissionWeb.contentTypeOf("a.JS")).toBe("text/javascript; charset=utf-8")
  })

  it.scopedLive.skipIf(!webRuns)("redirects, types, the page's own CSP (the API keeps its sandbox), 404s, credentials", () =>
    Effect.gen(function*() {
      const { port } = yield* start({ transmissionWeb: TransmissionWeb.debianDirectory })
      for (const path of ["/transmission", "/transmission/web"]) {
        const r = yield* raw(port, { path })
        expect([path, r.status, r.headers["location"]]).toEqual([path, 301, "/transmission/web/"])
      }
      const index = yield* raw(port, { path: "/transmission/web/" })
      expect([index.status, index.headers["content-type"]]).toEqual([200, "text/html; charset=utf-8"])
      expect(index.text).toContain("Transmission Web Interface")
      expect(index.headers["content-security-policy"]).toBe(TransmissionWeb.contentSecurityPolicy)
      expect(index.headers["x-frame-options"]).toBe("DENY")
      const js = yield* raw(port, { path: "/transmission/web/javascript/remote.js" })
      expect([js.status, js.headers["content-type"]]).toEqual([200, "text/javascript; charset=utf-8"])
      expect(js.body.equals(Fs.readFileSync(Path.join(TransmissionWeb.debianDirectory, "javascript", "remote.js")))).toBe(true)
      const api = yield* raw(port, { path: "/api/torrents" })
      expect(api.headers["content-security-policy"]).toMatch(/sandbox/)
      for (const path of ["/transmission/web/nope.js", "/transmission/web/%2e%2e/%2e%2e/etc/passwd", "/transmission/web/javascript/"]) {
        expect([path, (yield* raw(port, { path })).status]).toEqual([path, 404])
      }
    }))

  it.scopedLive.skipIf(!webRuns)("with credentials: 401 with a Basic challenge, then the page", () =>
    Effect.gen(function*() {
      const auth = yield* Auth.addUser(Auth.empty, "alice", "secret")
      const { port } = yield* start({ auth, transmissionWeb: TransmissionWeb.debianDirectory })
      const none = yield* raw(port, { path: "/transmission/web/" })
      expect([none.status, String(none.headers["www-authenticate"])]).toEqual([401, expect.stringMatching(/Basic realm=/)])
      const ok = yield* raw(port, { path: "/transmission/web/", headers: { authorization: `Basic ${Buffer.from("alice:secret").toString("base64")}` } })
      expect(ok.status).toBe(200)
    }))
})

const enabled = webRuns && Browser.shouldRun("Transmission's web client in Chromium") && Real.shouldRun("libtorrent") &&
  Opentracker.shouldRun("Transmission's web client in Chromium")

const { stops, dir } = cleanup()

/** The list row of the torrent named `name`, marked so that a click can find it. */
const markRow = (name: string) => `(() => {
  const row = [...document.querySelectorAll("#torrent_list li.torrent")]
    .find((li) => li.querySelector(".torrent_name")?.textContent === ${JSON.stringify(name)})
  if (row === undefined) return false
  document.querySelectorAll("[data-et-row]").forEach((e) => e.removeAttribute("data-et-row"))
  row.setAttribute("data-et-row", ${JSON.stringify(name)})
  return true
})()`

const rowText = (name: string, part: "peer" | "progress") => `(() => {
  const row = [...document.querySelectorAll("#torrent_list li.torrent")]
    .find((li) => li.querySelector(".torrent_name")?.textContent === ${JSON.stringify(name)})
  return row?.querySelector(${JSON.stringify(part === "peer" ? ".torrent_peer_details" : ".torrent_progress_details")})?.textContent ?? ""
})()`

const names = `[...document.querySelectorAll("#torrent_list li.torrent .torrent_name")].map((e) => e.textContent).sort()`

/** The inspector's file row named `name`, marked for a click. */
const markFile = (name: string) => `(() => {
  const row = [...document.querySelectorAll("#inspector_file_list li")]
    .find((li) => li.querySelector(".inspector_torrent_file_list_entry_name")?.textContent === ${JSON.stringify(name)})
  if (row === undefined) return false
  row.setAttribute("data-et-file", ${JSON.stringify(name)})
  return true
})()`

describe.runIf(enabled)("Transmission's web client in headless Chromium, over the real session", () => {
  let first: Built
  let second: Built
  // never seeded: added paused, its files stay editable in the inspector
  const third = build({ name: "third", pieceLength: 16 * KiB, files: [{ path: ["a.bin"], length: 50_000 }, { path: ["b.bin"], length: 60_000 }] })
  const seeders = new Map<Built, Real.RealSeeder>()

  beforeAll(async () => {
    const pre = [
      build({ name: "first.bin", pieceLength: 32 * KiB, files: [{ path: ["first.bin"], length: 200 * KiB + 5 }], single: true }),
      build({
        name: "second",
        pieceLength: 32 * KiB,
        files: [{ path: ["x.bin"], length: 400 * KiB + 17 }, { path: ["y.bin"], length: 90_000 }]
      })
    ]
    const tracker = await Opentracker.start(pre.map(Tracked.hexOf))
    stops.push(tracker.stop)
    ;[first, second] = pre.map((b) => Tracked.withAnnounce(b, tracker.httpUrl)) as [Built, Built]
    for (const b of [first, second]) {
      const s = await Real.libtorrent(b, { upLimit: 128 * KiB })
      stops.push(s.stop)
      seeders.set(b, s)
    }
    await Promise.all([first, second].map((b) => Tracked.untilSeeders(tracker.port, b, 1)))
  }, 120_000)

  it.scopedLive("loads, lists, adds through its upload dialog (downloads, seeds), pauses and removes", () =>
    Effect.gen(function*() {
      const stateDir = dir("tr-web-state")
      const out = dir("tr-web-out")
      const shots = Browser.artifactsDir("transmission-web")
      const session = yield* Layer.build(
        SessionLive.layer({ stateDir, settings: { downloadDir: out } }).pipe(Layer.provide(Tracked.trackedClient({ stateDir })))
      )
      const sessionService = yield* Effect.provide(Session, session)
      const { url } = yield* Server.start({ port: 0, eventLoopLag: false, transmissionWeb: TransmissionWeb.debianDirectory }).pipe(
        Effect.provide(session)
      )
      yield* sessionService.add({ _tag: "Metainfo", bytes: first.bytes })
      const thirdId = (yield* sessionService.add({ _tag: "Metainfo", bytes: third.bytes }, { paused: true })).id
      const torrentFile = Path.join(dir("tr-web-torrents"), "second.torrent")
      Fs.writeFileSync(torrentFile, second.bytes)

      const browser = yield* Effect.acquireRelease(Effect.promise(() => Browser.launch()), (b) => Effect.promise(() => b.close()))
      const step = (f: () => Promise<unknown>) => Effect.promise(f)

      // It loads and lists the torrent already there.
      yield* step(() => browser.navigate(`${url}/transmission/web/`))
      yield* step(() => browser.waitFor("the torrents listed", `JSON.stringify(${names}) === '["first.bin","third"]'`))
      yield* step(() => browser.screenshot(Path.join(shots, "1-loaded.png")))

      // Add: the toolbar's Open button, a file picked, Upload.
      yield* step(() => browser.click("#toolbar-open"))
      yield* step(() => browser.waitFor("the upload dialog", `$("#upload_container").is(":visible")`))
      yield* step(() => browser.setFiles("#torrent_upload_file", [torrentFile]))
      yield* step(() => browser.screenshot(Path.join(shots, "2-upload-dialog.png")))
      yield* step(() => browser.click("#upload_confirm_button"))
      yield* step(() => browser.waitFor("three listed", `JSON.stringify(${names}) === '["first.bin","second","third"]'`))
      expect((yield* sessionService.list).map((t) => t.name).sort()).toEqual(["first.bin", "second", "third"])

      // It downloads, and the page says so: seeding, its size, what it uploaded.
      yield* step(() => browser.waitFor("second seeding", `${rowText("second", "peer")}.startsWith("Seeding to")`, 90_000))
      const progress = yield* step(() => browser.evaluate<string>(rowText("second", "progress")))
      expect(progress).toMatch(/^\d+(\.\d+)? kB, uploaded /)
      const seederDir = seeders.get(second)!.dataDir
      for (const f of ["x.bin", "y.bin"]) {
        expect(Fs.readFileSync(Path.join(out, "second", f)).equals(Fs.readFileSync(Path.join(seederDir, "second", f)))).toBe(true)
      }
      yield* step(() => browser.screenshot(Path.join(shots, "3-seeding.png")))

      // The inspector of the paused one: its files; one is unticked, and the session no longer wants it.
      yield* step(() => browser.evaluate(markRow("third")))
      yield* step(() => browser.click(`[data-et-row="third"]`))
      yield* step(() => browser.click("#toolbar-inspector"))
      yield* step(() => browser.waitFor("the inspector", `$("#torrent_inspector").is(":visible")`))
      yield* step(() => browser.click("#inspector-tab-files"))
      yield* step(() => browser.waitFor("its files", `${markFile("a.bin")} && ${markFile("b.bin")}`))
      yield* step(() => browser.click(`[data-et-file="b.bin"] input.file_wanted_control`))
      yield* step(() => browser.waitFor("b.bin unticked", `!document.querySelector('[data-et-file="b.bin"] input.file_wanted_control').checked`))
      const wanted = yield* Effect.repeat(
        Effect.map(Effect.zipRight(Effect.sleep("100 millis"), sessionService.get(thirdId)), (d) => d.files.map((f) => f.wanted)),
        { until: (w) => w[1] === false }
      ).pipe(Effect.timeout("20 seconds"))
      expect(wanted).toEqual([true, false])
      yield* step(() => browser.screenshot(Path.join(shots, "3b-inspector-files.png")))
      yield* step(() => browser.click("#toolbar-inspector"))
      yield* step(() => browser.waitFor("the inspector closed", `!$("#torrent_inspector").is(":visible")`))

      // Select it, pause it with the toolbar.
      yield* step(() => browser.evaluate(markRow("second")))
      yield* step(() => browser.click(`[data-et-row="second"]`))
      yield* step(() => browser.waitFor("second selected", `document.querySelector('[data-et-row="second"]').classList.contains("selected")`))
      yield* step(() => browser.click("#toolbar-pause"))
      yield* step(() => browser.waitFor("second paused", `${rowText("second", "peer")} === "Paused"`))
      const paused = (yield* sessionService.list).find((t) => t.name === "second")
      expect(paused?.state).toBe("paused")
      yield* step(() => browser.screenshot(Path.join(shots, "4-paused.png")))

      // Remove it: the toolbar, then the confirmation dialog.
      yield* step(() => browser.click("#toolbar-remove"))
      yield* step(() => browser.waitFor("the confirmation", `$("#dialog_container").is(":visible") && $("#dialog_heading").text()`))
      yield* step(() => browser.screenshot(Path.join(shots, "5-confirm-remove.png")))
      yield* step(() => browser.click("#dialog_confirm_button"))
      yield* step(() => browser.waitFor("second gone", `JSON.stringify(${names}) === '["first.bin","third"]'`))
      expect((yield* sessionService.list).map((t) => t.name).sort()).toEqual(["first.bin", "third"])
      // removed, not deleted: the data stays
      expect(Fs.existsSync(Path.join(out, "second", "x.bin"))).toBe(true)
      yield* step(() => browser.screenshot(Path.join(shots, "6-removed.png")))

      // Chrome logs each 409 of the RPC's CSRF handshake (Transmission's protocol: the page then retries with the id)
      expect(browser.problems().filter((p) => !/status of 409 \(Conflict\)/.test(p))).toEqual([])
    }), { timeout: 180_000 })
})
