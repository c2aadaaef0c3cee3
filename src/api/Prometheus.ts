/**
 * The process's `effect/Metric` registry in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), written from `Metric.snapshot`.
 *
 * One family per metric name (its `# HELP` from the first description, its `# TYPE` from the first state), samples
 * sorted by labels. Counters and gauges are one sample per label set; histograms are cumulative `_bucket{le=…}`
 * samples ending with `le="+Inf"`, then `_sum` and `_count`; summaries are `{quantile=…}` samples, `_sum`, `_count`;
 * Effect's frequencies become a counter family with one sample per observed value (label `key`). Names and label
 * names are reduced to the allowed characters, label values and help text escaped (`\\`, `\"`, `\n`). A name whose
 * metrics disagree on the type keeps the first type; the others are left out. The registry keys a metric by its
 * name, tags *and* description (and type details), so one series can have two entries: counters are added up,
 * for the other kinds the first is kept (a series appears once, as the format requires).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

type Kind = "counter" | "gauge" | "histogram" | "summary"

export const sanitizeName = (name: string): string => {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(s) ? s : `_${s}`
}

export const sanitizeLabelName = (name: string): string => {
  const s = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[a-zA-Z_]/.test(s) ? s : `_${s}`
}

export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

export const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

export const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Infinity) return "+Inf"
  if (value === -Infinity) return "-Inf"
  return String(value)
}

type Labels = ReadonlyArray<readonly [string, string]>

const labelString = (labels: Labels): string =>
  labels.length === 0 ? "" : `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`

interface Sample {
  readonly labels: Labels
  readonly lines: ReadonlyArray<string>
  /** A counter's count (to add up duplicates). */
  readonly count?: number | bigint
}

interface Family {
  readonly name: string
  readonly kind: Kind
  help: string | undefined
  /** By label string: one series per label set. */
  readonly samples: Map<string, Sample>
}

const kindOf = (state: unknown): Kind | undefined =>
  MetricState.isCounterState(state)
    ? "counter"
    : MetricState.isGaugeState(state)
    ? "gauge"
    : MetricState.isHistogramState(state)
    ? "histogram"
    : MetricState.isSummaryState(state)
    ? "summary"
    : MetricState.isFrequencyState(state)
    ? "counter"
    : undefined

/** The key's tags as sorted, sanitized, de-duplicated labels (the last value of a repeated key wins). */
const labelsOf = (pair: MetricPair.MetricPair.Untyped, reserved: string | undefined): Labels => {
  const byName = new Map<string, string>()
  for (const tag of pair.metricKey.tags) {
    const name = sanitizeLabelName(tag.key)
    if (name !== reserved) byName.set(name, tag.value)
  }
  return [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

const counterSample = (name: string, labels: Labels, count: number | bigint): Sample => ({
  labels,
  count,
  lines: [`${name}${labelString(labels)} ${formatValue(count)}`]
})

const add = (a: number | bigint, b: number | bigint): number | bigint =>
  typeof a === "bigint" || typeof b === "bigint" ? BigInt(a) + BigInt(b) : a + b

const samplesOf = (name: string, pair: MetricPair.MetricPair.Untyped): ReadonlyArray<Sample> => {
  const state: unknown = pair.metricState
  if (MetricState.isCounterState(state) || MetricState.isGaugeState(state)) {
    const labels = labelsOf(pair, undefined)
    if (MetricState.isCounterState(state)) return [counterSample(name, labels, state.count)]
    return [{ labels, lines: [`${name}${labelString(labels)} ${formatValue(state.value)}`] }]
  }
  if (MetricState.isHistogramState(state)) {
    const labels = labelsOf(pair, "le")
    const lines: Array<string> = []
    let sawInf = false
    for (const [boundary, cumulative] of state.buckets) {
      if (boundary === Infinity) sawInf = true
      lines.push(`${name}_bucket${labelString([...labels, ["le", formatValue(boundary)]])} ${formatValue(cumulative)}`)
    }
    if (!sawInf) lines.push(`${name}_bucket${labelString([...labels, ["le", "+Inf"]])} ${formatValue(state.count)}`)
    lines.push(`${name}_sum${labelString(labels)} ${formatValue(state.sum)}`)
    lines.push(`${name}_count${labelString(labels)} ${formatValue(state.count)}`)
    return [{ labels, lines }]
  }
  if (MetricState.isSummaryState(state)) {
    const labels = labelsOf(pair, "quantile")
    const lines: Array<string> = []
    for (const [quantile, value] of state.quantiles) {
      lines.push(
        `${name}${labelString([...labels, ["quantile", formatValue(quantile)]])} ${
          formatValue(Option.getOrElse(value, () => NaN))
        }`
      )
    }
    lines.push(`${name}_sum${labelString(labels)} ${formatValue(state.sum)}`)
    lines.push(`${name}_count${labelString(labels)} ${formatValue(state.count)}`)
    return [{ labels, lines }]
  }
  if (MetricState.isFrequencyState(state)) {
    const base = labelsOf(pair, "key")
    return [...state.occurrences.entries()].map(([key, count]) => {
      return counterSample(name, [...base, ["key", key]], count)
    })
  }
  return []
}


/** The exposition of these metric pairs. */
export const render = (pairs: Iterable<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  for (const pair of pairs) {
    const kind = kindOf(pair.metricState)
    if (kind === undefined) continue
    const name = sanitizeName(pair.metricKey.name)
    let family = families.get(name)
    if (family === undefined) {
      family = { name, kind, help: undefined, samples: new Map() }
      families.set(name, family)
    }
    if (family.kind !== kind) continue
    if (family.help === undefined && Option.isSome(pair.metricKey.description)) {
      family.help = pair.metricKey.description.value
    }
    for (const sample of samplesOf(name, pair)) {
      const key = labelString(sample.labels)
      const existing = family.samples.get(key)
      if (existing === undefined) family.samples.set(key, sample)
      else if (existing.count !== undefined && sample.count !== undefined) {
        // Two registry entries for one series (the same name and tags, e.g. with and without a description):
        // one series, the sum of the counts.
        family.samples.set(key, counterSample(name, sample.labels, add(existing.count, sample.count)))
      }
    }
  }
  const out: Array<string> = []
  for (const family of [...families.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    out.push(`# HELP ${family.name} ${escapeHelp(family.help ?? family.name)}`)
    out.push(`# TYPE ${family.name} ${family.kind}`)
    for (const key of [...family.samples.keys()].sort()) out.push(...family.samples.get(key)!.lines)
  }
  return out.length === 0 ? "" : out.join("\n") + "\n"
}

/** The registry now, rendered. */
export const exposition: Effect.Effect<string> = Effect.map(Metric.snapshot, render)
