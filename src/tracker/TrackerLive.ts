/**
 * The live `Tracker`: http(s) URLs go to HttpTracker, udp URLs to UdpTracker, anything else fails `unsupported`.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Http from "../net/Http.ts"
import * as HttpTracker from "./HttpTracker.ts"
import { type Service, Tracker } from "./Tracker.ts"
import { TrackerError } from "./TrackerError.ts"
import * as UdpTracker from "./UdpTracker.ts"

export interface Options {
  readonly http?: HttpTracker.Options | undefined
  readonly udp?: UdpTracker.Options | undefined
}

const schemeOf = (url: string): string => {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)
  return m === null ? "" : m[1]!.toLowerCase()
}

export const make = (options?: Options): Effect.Effect<Service, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const http = yield* HttpTracker.make(options?.http)
    const udp = yield* UdpTracker.make(options?.udp)
    const unsupported = (url: string) =>
      new TrackerError({ reason: "unsupported", url, detail: `unsupported tracker scheme "${schemeOf(url)}"` })
    const pick = (url: string) => {
      const scheme = schemeOf(url)
      return scheme === "http" || scheme === "https" ? http : scheme === "udp" ? udp : undefined
    }
    return Tracker.of({
      announce: (url, request) => pick(url)?.announce(url, request) ?? Effect.fail(unsupported(url)),
      scrape: (url, infoHashes) => pick(url)?.scrape(url, infoHashes) ?? Effect.fail(unsupported(url))
    })
  })

/** The `Tracker` given an HttpClient. */
export const layerWithoutHttp = (options?: Options): Layer.Layer<Tracker, never, HttpClient.HttpClient> =>
  Layer.scoped(Tracker, make(options))

/** The `Tracker` with node's HTTP client: what the CLI and most embedders want. */
export const layer = (options?: Options): Layer.Layer<Tracker> =>
  layerWithoutHttp(options).pipe(Layer.provide(Http.layer))
