/**
 * Port mapping on the home router, so peers outside can connect to us: PCP (RFC 6887) to the default gateway first,
 * NAT-PMP (RFC 6886) when the gateway answers that it speaks only NAT-PMP, UPnP IGD (SSDP discovery, SOAP
 * AddPortMapping) when neither answers (PCP and NAT-PMP share the gateway's port 5351: silence there is not asked
 * twice). The listening port is mapped
 * for TCP (peers) and UDP (uTP, the DHT), with the external port asked equal to the internal one; the gateway's
 * answer decides (NAT-PMP may grant another port: that one is what `current` reports and trackers are told).
 *
 * Leases: PCP and NAT-PMP mappings for 2 hours renewed at half-life (a PCP renewal repeats the mapping's nonce); UPnP ones for 1 hour renewed every 30 minutes (a
 * gateway that forgot them, e.g. after a reboot, gets them again). A renewal that fails is retried, and the mapping
 * is given up (`current` undefined, said once) only when the gateway stops answering. Closing the scope removes the
 * mappings (PCP and NAT-PMP lifetime 0, UPnP DeletePortMapping), bounded by 2 s.
 */
import { randomBytes } from "node:crypto"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Igd from "./Igd.ts"
import * as NatPmp from "./NatPmp.ts"
import * as Pcp from "./Pcp.ts"

export type Method = "pcp" | "natpmp" | "upnp"

export interface Options {
  /** The port we listen on (TCP, and UDP when `udp`). */
  readonly port: number
  /** Map the UDP port too (uTP, DHT); default true. */
  readonly udp?: boolean | undefined
  /** Which methods, in order (default all three: PCP, then NAT-PMP, then UPnP). */
  readonly methods?: ReadonlyArray<Method> | undefined
  /** The PCP / NAT-PMP gateway (default: the default route's, from /proc/net/route). */
  readonly gateway?: string | undefined
  readonly description?: string | undefined
}

export interface Mapping {
  readonly method: Method
  /** The gateway's external IPv4 address, when it said. */
  readonly externalAddress: string | undefined
  readonly externalPort: number
}

export interface PortMapping {
  /** The mapping in force, if any. */
  readonly current: () => Mapping | undefined
  /** Resolves after the first attempt: the mapping, or undefined when no gateway mapped the port. */
  readonly ready: Effect.Effect<Mapping | undefined>
}

const NATPMP_LIFETIME = 7200
const METHOD_NAMES: Record<Method, string> = { pcp: "PCP", natpmp: "NAT-PMP", upnp: "UPnP" }
const UPNP_LEASE = 3600

// ---------------------------------------------------------------------------------------------------------------
// small I/O helpers (node callbacks wrapped once)

/**
 * One UDP exchange: sends `request` to host:port, resends on RFC 6886's schedule (250 ms doubling), `tries` times;
 * `tries` 0 sends it once and awaits no answer (it ends once the datagram is handed to the kernel). Any datagram from
 * `host` adds it to `heard` (it answers, even if not this request).
 */
const udpExchange = <A>(
  host: string,
  port: number,
  request: Uint8Array,
  accept: (datagram: Uint8Array) => A | undefined,
  tries: number,
  heard?: Set<string>
): Effect.Effect<Option.Option<A>> =>
  Effect.async<Option.Option<A>>((resume) => {
    const socket = Dgram.createSocket("udp4")
    let timer: NodeJS.Timeout | undefined
    let done = false
    const finish = (a: Option.Option<A>) => {
      if (done) return
      done = true
      if (timer !== undefined) clearTimeout(timer)
      socket.close()
      resume(Effect.succeed(a))
    }
    socket.on("error", () => finish(Option.none()))
    socket.on("message", (msg, rinfo) => {
      if (rinfo.address !== host) return
      heard?.add(host)
      const a = accept(new Uint8Array(msg.buffer, msg.byteOffset, msg.length))
      if (a !== undefined) finish(Option.some(a))
    })
    const attempt = (n: number) => {
      if (n >= Math.max(1, tries)) return finish(Option.none())
      socket.send(request, port, host, (e) => (tries === 0 || (e !== null && e !== undefined)) && finish(Option.none()))
      if (tries > 0) timer = setTimeout(() => attempt(n + 1), 250 * 2 ** n)
    }
    socket.bind(0, () => attempt(0))
    return Effect.sync(() => finish(Option.none()))
  })

/** Which local address the kernel would use to reach `host` (a connected UDP socket sends nothing). */
const localAddressToward = (host: string): Effect.Effect<string | undefined> =>
  Effect.async<string | undefined>((resume) => {
    const s = Dgram.createSocket("udp4")
    s.on("error", () => {
      s.close()
      resume(Effect.succeed(undefined))
    })
    s.connect(9, host, () => {
      const a = s.address().address
      s.close()
      resume(Effect.succeed(a))
    })
  })

const MAX_BODY = 256 * 1024

/** An HTTP/1.1 request on the LAN: status and body (bounded), failing on a network error or after 5 s. */
const httpRequest = (
  url: string,
  init: { readonly method: "GET" | "POST"; readonly headers?: Record<string, string>; readonly body?: string }
): Effect.Effect<{ readonly status: number; readonly body: string }, Igd.IgdError> =>
  Effect.async<{ readonly status: number; readonly body: string }, Igd.IgdError>((resume) => {
    const req = Http.request(url, { method: init.method, headers: init.headers, timeout: 5000 }, (res) => {
      const chunks: Array<Buffer> = []
      let size = 0
      res.on("data", (c: Buffer) => {
        size += c.length
        if (size > MAX_BODY) {
          req.destroy()
          return resume(Effect.fail(new Igd.IgdError({ detail: `${url}: answer larger than ${MAX_BODY} bytes` })))
        }
        chunks.push(c)
      })
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") })))
      res.on("error", (e) => resume(Effect.fail(new Igd.IgdError({ detail: `${url}: ${e.message}` }))))
    })
    req.on("timeout", () => req.destroy(new Error("no answer within 5 s")))
    req.on("error", (e) => resume(Effect.fail(new Igd.IgdError({ detail: `${url}: ${e.message}` }))))
    req.end(init.body)
    return Effect.sync(() => req.destroy())
  })

const soap = (control: Igd.Control, request: Igd.SoapRequest, outputs: ReadonlyArray<string>) =>
  httpRequest(control.controlUrl, {
    method: "POST",
    headers: { "Content-Type": "text/xml; charset=\"utf-8\"", SOAPAction: request.soapAction },
    body: request.body
  }).pipe(Effect.flatMap(({ body, status }) => Either.match(Igd.soapResponse(status, body, outputs), {
    onLeft: Effect.fail,
    onRight: Effect.succeed
  })))

// ---------------------------------------------------------------------------------------------------------------
// NAT-PMP

interface Lease {
  readonly mapping: Mapping
  /** Seconds until it must be renewed. */
  readonly renewIn: number
  readonly remove: Effect.Effect<void>
}

const natPmpGateway = (options: Options): string | undefined => {
  if (options.gateway !== undefined) return options.gateway
  try {
    return NatPmp.defaultGateway(Fs.readFileSync("/proc/net/route", "utf8"))
  } catch {
    return undefined
  }
}

const natPmpMap = (gateway: string, options: Options, externalPort: number, heard: Set<string>) =>
  Effect.gen(function*() {
    const map = (protocol: NatPmp.Protocol, external: number, lifetime: number, tries = 4) =>
      udpExchange(gateway, NatPmp.PORT, NatPmp.mappingRequest(protocol, options.port, external, lifetime), (d) => {
        const r = NatPmp.decode(d)
        return Either.isRight(r) && r.right._tag === "Mapping" && r.right.protocol === protocol &&
            (r.right.internalPort === options.port || r.right.result !== 0)
          ? r.right
          : undefined
      }, tries, heard)
    const tcp = yield* map("tcp", externalPort, NATPMP_LIFETIME)
    if (Option.isNone(tcp)) return Either.left("no NAT-PMP answer from " + gateway)
    if (tcp.value.result !== 0) return Either.left(`NAT-PMP refused: ${NatPmp.resultText(tcp.value.result)}`)
    const granted = tcp.value.externalPort
    if (options.udp !== false) {
      const udp = yield* map("udp", granted, NATPMP_LIFETIME)
      if (Option.isSome(udp) && udp.value.result !== 0) {
        yield* Effect.logDebug(`port mapping: NAT-PMP refused UDP ${granted}: ${NatPmp.resultText(udp.value.result)}`)
      }
    }
    const address = yield* udpExchange(gateway, NatPmp.PORT, NatPmp.externalAddressRequest(), (d) => {
      const r = NatPmp.decode(d)
      return Either.isRight(r) && r.right._tag === "ExternalAddress" && r.right.result === 0 ? r.right.address : undefined
    }, 3)
    const lease: Lease = {
      mapping: { method: "natpmp", externalAddress: Option.getOrUndefined(address), externalPort: granted },
      renewIn: Math.max(60, Math.floor(tcp.value.lifetime / 2)),
      remove: Effect.all([map("tcp", 0, 0, 2), options.udp !== false ? map("udp", 0, 0, 2) : Effect.void], {
        concurrency: "unbounded",
        discard: true
      })
    }
    return Either.right(lease)
  })

// ---------------------------------------------------------------------------------------------------------------
// PCP

/** Why PCP did not map: the gateway is silent on 5351 (NAT-PMP would be too), speaks only NAT-PMP, or refused. */
type PcpFailure = { readonly _tag: "Silent" | "NatPmpOnly" | "Refused"; readonly detail: string }

/** One PCP MAP exchange with `gateway` for our `options.port`: the answer to this request, if any came. */
const pcpRequest = (
  gateway: string,
  client: string,
  nonce: Uint8Array,
  options: Options,
  protocol: Pcp.Protocol,
  suggested: number,
  lifetime: number,
  tries: number,
  heard?: Set<string>
) => {
  const request = Pcp.mapRequest({ nonce, protocol, internalPort: options.port, suggestedPort: suggested, lifetime, clientAddress: client })
  if (Either.isLeft(request)) return Effect.succeed(Option.none<Pcp.Response>())
  return udpExchange(gateway, Pcp.PORT, request.right, (d) => {
    const r = Pcp.decode(d)
    if (Either.isLeft(r)) return undefined
    if (r.right._tag === "NatPmpOnly") return r.right
    const m = r.right
    // the answer to this request: our nonce, protocol and port (an error answer may not echo the port)
    const ours = m.nonce.every((x, i) => x === nonce[i]) && m.protocol === protocol &&
      (m.internalPort === options.port || m.result !== 0)
    return ours ? m : undefined
  }, tries, heard)
}

const pcpMap = (gateway: string, options: Options, externalPort: number, nonce: Uint8Array, heard: Set<string>) =>
  Effect.gen(function*() {
    const client = yield* localAddressToward(gateway)
    if (client === undefined) return Either.left<PcpFailure>({ _tag: "Silent", detail: "no local address toward " + gateway })
    const map = (protocol: Pcp.Protocol, suggested: number, lifetime: number, tries = 4) =>
      pcpRequest(gateway, client, nonce, options, protocol, suggested, lifetime, tries, heard)
    const tcp = yield* map("tcp", externalPort, NATPMP_LIFETIME)
    if (Option.isNone(tcp)) return Either.left<PcpFailure>({ _tag: "Silent", detail: "no PCP or NAT-PMP answer from " + gateway })
    const t = tcp.value
    if (t._tag === "NatPmpOnly") return Either.left<PcpFailure>({ _tag: "NatPmpOnly", detail: gateway + " speaks NAT-PMP, not PCP" })
    if (t.result !== 0) return Either.left<PcpFailure>({ _tag: "Refused", detail: `PCP refused: ${Pcp.resultText(t.result)}` })
    const granted = t.externalPort
    if (options.udp !== false) {
      const udp = yield* map("udp", granted, NATPMP_LIFETIME)
      if (Option.isSome(udp) && udp.value._tag === "Map" && udp.value.result !== 0) {
        yield* Effect.logDebug(`port mapping: PCP refused UDP ${granted}: ${Pcp.resultText(udp.value.result)}`)
      }
    }
    const lease: Lease = {
      mapping: {
        method: "pcp",
        externalAddress: /^\d+\.\d+\.\d+\.\d+$/.test(t.externalAddress) && t.externalAddress !== "0.0.0.0"
          ? t.externalAddress
          : undefined,
        externalPort: granted
      },
      renewIn: Math.max(60, Math.floor(t.lifetime / 2)),
      remove: Effect.all([map("tcp", granted, 0, 2), options.udp !== false ? map("udp", granted, 0, 2) : Effect.void], {
        concurrency: "unbounded",
        discard: true
      })
    }
    return Either.right(lease)
  })

/**
 * Removes what an attempt interrupted half-way may have made: the gateway may have granted a request whose answer
 * never reached us (or reached us just before the interruption). PCP deletes by nonce and internal port, NAT-PMP by
 * internal port: neither needs the external port granted.
 *
 * `answers`: the gateway has answered us; its acknowledgements are then awaited (and the removals resent). One that
 * has not (no gateway there, the usual case on a network without PCP or NAT-PMP) gets each removal once, not waited
 * for: waiting for its silence held every exit for 0.75 s. A removal lost on the way leaves a mapping that expires.
 */
const abandonAttempt = (
  gateway: string,
  options: Options,
  method: "pcp" | "natpmp",
  externalPort: number,
  nonce: Uint8Array,
  answers: boolean
) =>
  Effect.gen(function*() {
    const protocols: ReadonlyArray<Pcp.Protocol> = options.udp !== false ? ["tcp", "udp"] : ["tcp"]
    const all = { concurrency: "unbounded", discard: true } as const
    const tries = answers ? 2 : 0
    if (method === "natpmp") {
      return yield* Effect.forEach(protocols, (p) =>
        udpExchange(gateway, NatPmp.PORT, NatPmp.mappingRequest(p, options.port, 0, 0), () => true, tries), all)
    }
    const client = yield* localAddressToward(gateway)
    if (client === undefined) return
    yield* Effect.forEach(protocols, (p) => pcpRequest(gateway, client, nonce, options, p, externalPort, 0, tries), all)
  })

// ---------------------------------------------------------------------------------------------------------------
// UPnP IGD

/** Sends the SSDP searches and collects answers for `wait`; the first gateway location that answered. */
const ssdpDiscover = (wait: Duration.Duration): Effect.Effect<string | undefined> =>
  Effect.async<string | undefined>((resume) => {
    const socket = Dgram.createSocket("udp4")
    let done = false
    const finish = (location: string | undefined) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.close()
      resume(Effect.succeed(location))
    }
    const timer = setTimeout(() => finish(undefined), Duration.toMillis(wait))
    socket.on("error", () => finish(undefined))
    socket.on("message", (msg) => {
      const location = Igd.searchLocation(msg.toString("latin1"))
      if (location !== undefined) finish(location)
    })
    socket.bind(0, () => {
      for (const st of [...Igd.DEVICE_TYPES, ...Igd.SERVICE_TYPES.slice(0, 2)]) {
        socket.send(Igd.searchRequest(st), Igd.SSDP_PORT, Igd.SSDP_GROUP, () => {})
      }
    })
    return Effect.sync(() => finish(undefined))
  })

const upnpMap = (options: Options, externalPort: number, description: string) =>
  Effect.gen(function*() {
    const location = yield* ssdpDiscover(Duration.seconds(2))
    if (location === undefined) return Either.left("no UPnP gateway answered SSDP")
    const got = yield* Effect.either(httpRequest(location, { method: "GET" }))
    if (Either.isLeft(got)) return Either.left(got.left.message)
    const control = Igd.findControl(got.right.body, location)
    if (Either.isLeft(control)) return Either.left(control.left.message)
    const c = control.right
    const internalClient = yield* localAddressToward(new URL(c.controlUrl).hostname)
    if (internalClient === undefined) return Either.left("no local address toward the gateway")
    const add = (protocol: "TCP" | "UDP", port: number) =>
      soap(c, Igd.addPortMapping(c.serviceType, {
        protocol,
        externalPort: port,
        internalPort: options.port,
        internalClient,
        lease: UPNP_LEASE,
        description
      }), [])
    // 718 ConflictInMappingEntry: another host holds that external port; try others (NAT-PMP picks by itself).
    let granted = externalPort
    let tcp = yield* Effect.either(add("TCP", granted))
    for (let i = 0; i < 3 && Either.isLeft(tcp) && tcp.left.code === 718; i++) {
      granted = 10000 + Math.floor(Math.random() * 50000)
      tcp = yield* Effect.either(add("TCP", granted))
    }
    if (Either.isLeft(tcp)) return Either.left(`AddPortMapping TCP ${granted}: ${tcp.left.message}`)
    if (options.udp !== false) {
      const udp = yield* Effect.either(add("UDP", granted))
      if (Either.isLeft(udp)) yield* Effect.logDebug(`port mapping: AddPortMapping UDP ${granted}: ${udp.left.message}`)
    }
    const ip = yield* Effect.either(soap(c, Igd.getExternalIpAddress(c.serviceType), ["NewExternalIPAddress"]))
    const del = (protocol: "TCP" | "UDP") => Effect.ignore(soap(c, Igd.deletePortMapping(c.serviceType, protocol, granted), []))
    const lease: Lease = {
      mapping: {
        method: "upnp",
        externalAddress: Either.isRight(ip) ? ip.right["NewExternalIPAddress"] : undefined,
        externalPort: granted
      },
      renewIn: UPNP_LEASE / 2,
      remove: Effect.all([del("TCP"), options.udp !== false ? del("UDP") : Effect.void], {
        concurrency: "unbounded",
        discard: true
      })
    }
    return Either.right(lease)
  })

// ---------------------------------------------------------------------------------------------------------------

export const make = (options: Options): Effect.Effect<PortMapping, never, Scope.Scope> =>
  Effect.gen(function*() {
    const methods = options.methods ?? ["pcp", "natpmp", "upnp"]
    const description = options.description ?? `effect-torrent ${options.port}`
    const first = yield* Deferred.make<Mapping | undefined>()
    // One nonce for our PCP mappings: renewals and the removal repeat it (RFC 6887 §11.2).
    const nonce = new Uint8Array(randomBytes(Pcp.NONCE_LENGTH))
    let lease: Lease | undefined
    /**
     * A PCP or NAT-PMP attempt under way, cleared only once its outcome is in `lease` (or it failed): closing the scope
     * in between removes what it may have mapped (`abandonAttempt`). UPnP needs the granted port to delete: not covered.
     */
    let inFlight: { readonly gateway: string; readonly method: "pcp" | "natpmp"; readonly externalPort: number } | undefined
    /** Gateways that answered us (anything) on 5351. */
    const heard = new Set<string>()

    /** One attempt by every method in order; the failures, for the log, when none mapped. */
    const attempt = (externalPort: number) =>
      Effect.gen(function*() {
        const reasons: Array<string> = []
        // PCP heard nothing on the gateway's port 5351: NAT-PMP, on the same port, is not asked too.
        let silent = false
        for (const method of methods) {
          if (method === "upnp") {
            const r = yield* upnpMap(options, externalPort, description)
            if (Either.isRight(r)) return Either.right(r.right)
            reasons.push(r.left)
            continue
          }
          const gateway = natPmpGateway(options)
          if (gateway === undefined) {
            reasons.push(`no default gateway for ${method === "pcp" ? "PCP" : "NAT-PMP"}`)
            continue
          }
          if (method === "pcp") {
            inFlight = { gateway, method, externalPort }
            const r = yield* pcpMap(gateway, options, externalPort, nonce, heard)
            if (Either.isRight(r)) return Either.right(r.right)
            inFlight = undefined
            silent = r.left._tag === "Silent"
            reasons.push(r.left.detail)
            continue
          }
          if (silent) continue
          inFlight = { gateway, method, externalPort }
          const r = yield* natPmpMap(gateway, options, externalPort, heard)
          if (Either.isRight(r)) return Either.right(r.right)
          inFlight = undefined
          reasons.push(r.left)
        }
        return Either.left(reasons.join("; "))
      })

    const run = Effect.gen(function*() {
      let failures = 0
      for (;;) {
        const r = yield* attempt(lease?.mapping.externalPort ?? options.port)
        if (Either.isRight(r)) {
          const was = lease?.mapping
          lease = r.right
          inFlight = undefined
          const m = r.right.mapping
          if (was === undefined || was.externalPort !== m.externalPort || was.method !== m.method) {
            yield* Effect.logInfo(
              `port mapping: ${options.udp !== false ? "TCP and UDP" : "TCP"} ${options.port} → ` +
                `${m.externalAddress ?? "?"}:${m.externalPort} (${METHOD_NAMES[m.method]})`
            )
          }
          failures = 0
          yield* Deferred.succeed(first, m)
          yield* Effect.sleep(Duration.seconds(r.right.renewIn))
          continue
        }
        failures++
        if (lease !== undefined && failures >= 3) {
          yield* Effect.logWarning(`port mapping lost: ${r.left}`)
          lease = undefined
        } else if (lease === undefined && failures === 1) {
          yield* Effect.logInfo(`port mapping: none (${r.left})`)
        }
        yield* Deferred.succeed(first, lease?.mapping)
        // A gateway that did not answer is asked again later: routers reboot, laptops change networks.
        yield* Effect.sleep(lease === undefined ? Duration.minutes(5) : Duration.minutes(1))
      }
    })
    // Finalizers run last-added first: the renewals stop, then the mappings are removed.
    yield* Effect.addFinalizer(() => {
      const attempt = inFlight
      const removals = [
        ...(lease === undefined ? [] : [lease.remove]),
        ...(attempt === undefined
          ? []
          : [abandonAttempt(attempt.gateway, options, attempt.method, attempt.externalPort, nonce, heard.has(attempt.gateway))])
      ]
      return Effect.all(removals, { concurrency: "unbounded", discard: true }).pipe(
        Effect.timeout(Duration.seconds(2)),
        Effect.ignore
      )
    })
    yield* Effect.forkScoped(run)
    return { current: () => lease?.mapping, ready: Deferred.await(first) }
  })
