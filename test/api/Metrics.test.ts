/**
 * The Prometheus exposition of the `effect/Metric` registry: the renderer on each kind of metric, `GET /metrics`
 * checked line by line against the text format 0.0.4's grammar, and the daemon's own metrics (sampled from the
 * session, the event-loop lag).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Prometheus from "../../src/api/Prometheus.ts"
import * as Metrics from "../../src/session/Metrics.ts"
import type { SessionShape } from "../../src/session/Session.ts"
import type * as TorrentInfo from "../../src/session/TorrentInfo.ts"
import { raw, start } from "./support.ts"

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*"
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`
const VALUE = "(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?Inf|NaN)"
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? ${VALUE}(?: -?\\d+)?$`)
const HELP = new RegExp(`^# HELP (${NAME}) (?:[^\\\\\\n]|\\\\[\\\\n])*$`)
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)

/** Checks every line of an exposition; answers the problems found (none: []). */
const problems = (text: string): Array<string> => {
  const out: Array<string> = []
  if (text !== "" && !text.endsWith("\n")) out.push("no final newline")
  const declared = new Set<string>()
  const series = new Set<string>()
  let family: { readonly name: string; readonly type: string } | undefined
  for (const line of text.split("\n").slice(0, -1)) {
    const help = HELP.exec(line)
    const type = TYPE.exec(line)
    const sample = SAMPLE.exec(line)
    if (help !== null) continue
    if (type !== null) {
      if (declared.has(type[1]!)) out.push(`family declared twice: ${line}`)
      declared.add(type[1]!)
      family = { name: type[1]!, type: type[2]! }
    } else if (sample !== null) {
      const name = sample[1]!
      const suffixes = family?.type === "histogram" ? ["_bucket", "_sum", "_count"] : family?.type === "summary" ? ["", "_sum", "_count"] : [""]
      if (family === undefined || !suffixes.some((s) => name === family!.name + s)) out.push(`sample outside its family: ${line}`)
      const id = line.slice(0, line.lastIndexOf(" "))
      if (series.has(id)) out.push(`series twice: ${id}`)
      series.add(id)
    } else {
      out.push(`not in the grammar: ${JSON.stringify(line)}`)
    }
  }
  return out
}

const render = (prefix: string) =>
  Effect.map(Metric.snapshot, (pairs) => Prometheus.render(pairs.filter((p) => p.metricKey.name.startsWith(prefix))))

describe("Prometheus.render", () => {
  it.effect("counters and gauges, labels sorted and escaped, help escaped", () =>
    Effect.gen(function*() {
      const c = Metric.counter("t1_requests_total", { description: "Requests\nserved \\ so far" })
      yield* Metric.incrementBy(Metric.tagged(Metric.tagged(c, "path", "/a\"b\\c\nd"), "method", "GET"), 3)
      yield* Metric.incrementBy(c, 2)
      yield* Metric.set(Metric.gauge("t1_temperature"), -1.5)
      yield* Metric.set(Metric.gauge("t1_big", { bigint: true }), 2n ** 70n)
      const text = yield* render("t1_")
      expect(text).toBe([
        "# HELP t1_big t1_big",
        "# TYPE t1_big gauge",
        "t1_big 1180591620717411303424",
        "# HELP t1_requests_total Requests\\nserved \\\\ so far",
        "# TYPE t1_requests_total counter",
        "t1_requests_total 2",
        "t1_requests_total{method=\"GET\",path=\"/a\\\"b\\\\c\\nd\"} 3",
        "# HELP t1_temperature t1_temperature",
        "# TYPE t1_temperature gauge",
        "t1_temperature -1.5",
        ""
      ].join("\n"))
      expect(problems(text)).toEqual([])
    }))

  it.effect("histograms: cumulative buckets in order, +Inf equal to the count, _sum and _count", () =>
    Effect.gen(function*() {
      const h = Metric.histogram("t2_latency_seconds", MetricBoundaries.fromIterable([0.1, 0.5, 1]), "Latency")
      for (const v of [0.05, 0.2, 0.3, 0.7, 2, 3]) yield* Metric.update(Metric.tagged(h, "op", "read"), v)
      const text = yield* render("t2_")
      expect(text).toBe([
        "# HELP t2_latency_seconds Latency",
        "# TYPE t2_latency_seconds histogram",
        "t2_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 1",
        "t2_latency_seconds_bucket{op=\"read\",le=\"0.5\"} 3",
        "t2_latency_seconds_bucket{op=\"read\",le=\"1\"} 4",
        "t2_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 6",
        "t2_latency_seconds_sum{op=\"read\"} 6.25",
        "t2_latency_seconds_count{op=\"read\"} 6",
        ""
      ].join("\n"))
      expect(problems(text)).toEqual([])
    }))

  it.effect("summaries, frequencies, odd names, a name used with two types", () =>
    Effect.gen(function*() {
      const s = Metric.summary({ name: "t3_size", maxAge: "1 minute", maxSize: 100, error: 0.01, quantiles: [0.5, 0.99] })
      for (const v of [1, 2, 3, 4]) yield* Metric.update(s, v)
      yield* Metric.update(Metric.frequency("t3_kinds"), "a\"b")
      yield* Metric.update(Metric.frequency("t3_kinds"), "a\"b")
      yield* Metric.increment(Metric.counter("t3_odd-name.total"))
      yield* Metric.increment(Metric.counter("t3_clash"))
      yield* Metric.set(Metric.tagged(Metric.gauge("t3_clash"), "x", "y"), 5)
      // one series, two registry entries (the description is part of the key): added up
      yield* Metric.incrementBy(Metric.counter("t3_twice", { description: "d" }), 2)
      yield* Metric.incrementBy(Metric.counter("t3_twice"), 3)
      const text = yield* render("t3_")
      expect(problems(text)).toEqual([])
      expect(text).toMatch(/# TYPE t3_size summary\nt3_size\{quantile="0.5"\} 2\nt3_size\{quantile="0.99"\} [34]\nt3_size_sum 10\nt3_size_count 4\n/)
      expect(text).toContain("# TYPE t3_kinds counter\nt3_kinds{key=\"a\\\"b\"} 2\n")
      expect(text).toContain("# TYPE t3_odd_name_total counter\nt3_odd_name_total 1\n")
      expect(text.match(/^t3_clash/gm)?.length).toBe(1)
      expect(text).toContain("# HELP t3_twice d\n# TYPE t3_twice counter\nt3_twice 5\n")
    }))

  it("value formats", () => {
    expect([NaN, Infinity, -Infinity, 0, 1e21, 12n].map(Prometheus.formatValue)).toEqual(["NaN", "+Inf", "-Inf", "0", "1e+21", "12"])
    expect(Prometheus.sanitizeName("9lives.count")).toBe("_9lives_count")
    expect(Prometheus.sanitizeLabelName("a:b")).toBe("a_b")
  })
})

describe("GET /metrics", () => {
  it.scopedLive("text format 0.0.4, every line in the grammar; a counter the test increments shows; torrents by state", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start()
      yield* fake.seed({ name: "a", files: [] })
      yield* fake.seed({ name: "b", files: [], paused: true })
      yield* Metric.incrementBy(Metric.counter("api_test_widgets_total", { description: "made by the test" }), 42)
      const r = yield* raw(port, { path: "/metrics" })
      expect(r.status).toBe(200)
      expect(r.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8")
      expect(problems(r.text)).toEqual([])
      expect(r.text).toContain("# HELP api_test_widgets_total made by the test\n# TYPE api_test_widgets_total counter\napi_test_widgets_total 42\n")
      expect(r.text).toContain('effect_torrent_torrents{state="fetching-metadata"} 1\n')
      expect(r.text).toContain('effect_torrent_torrents{state="paused"} 1\n')
      expect(r.text).toContain('effect_torrent_torrents{state="seeding"} 0\n')
      for (const name of ["downloaded_bytes_total", "uploaded_bytes_total", "download_rate_bytes_per_second", "upload_rate_bytes_per_second", "peers", "pieces_verified_total", "pieces_failed_total"]) {
        expect(r.text).toContain(`# TYPE effect_torrent_${name} `)
      }
      expect(r.text).toContain("# TYPE effect_torrent_event_loop_lag_seconds histogram\n")
      yield* Metric.incrementBy(Metric.counter("api_test_widgets_total"), 1)
      expect((yield* raw(port, { path: "/metrics" })).text).toContain("api_test_widgets_total 43\n")
    }))
})

describe("session/Metrics", () => {
  it.effect("the sampler: gauges from stats and the list, byte counters by the growth of the totals", () =>
    Effect.gen(function*() {
      let stats: TorrentInfo.SessionStats = { torrents: 0, active: 0, paused: 0, downloadRate: 100, uploadRate: 50, downloaded: 1000, uploaded: 10, peers: 4, uptime: 1 }
      const session = {
        stats: Effect.sync(() => stats),
        list: Effect.succeed([]),
        settings: undefined as unknown as SubscriptionRef.SubscriptionRef<TorrentInfo.Settings>,
        events: Stream.empty
      } as unknown as SessionShape
      const before = (yield* Metric.value(Metrics.downloadedBytes)).count
      const sample = yield* Metrics.makeSampler(session)
      yield* sample
      expect((yield* Metric.value(Metrics.downloadedBytes)).count - before).toBe(1000)
      expect((yield* Metric.value(Metrics.downloadRate)).value).toBe(100)
      expect((yield* Metric.value(Metrics.peers)).value).toBe(4)
      stats = { ...stats, downloaded: 1500, downloadRate: 7 }
      yield* sample
      yield* sample
      expect((yield* Metric.value(Metrics.downloadedBytes)).count - before).toBe(1500)
      expect((yield* Metric.value(Metrics.downloadRate)).value).toBe(7)
    }))

  it.scopedLive("the event-loop lag sampler records a blocked loop", () =>
    Effect.gen(function*() {
      const before = yield* Metric.value(Metrics.eventLoopLag)
      yield* Metrics.sampleEventLoopLag({ interval: "100 millis", resolutionMs: 5 })
      yield* Effect.sleep("150 millis")
      const until = Date.now() + 120
      while (Date.now() < until) {
        // block the event loop
      }
      yield* Effect.sleep("300 millis")
      const after = yield* Metric.value(Metrics.eventLoopLag)
      expect(after.count).toBeGreaterThan(before.count)
      expect(after.max).toBeGreaterThanOrEqual(0.1)
    }))
})
