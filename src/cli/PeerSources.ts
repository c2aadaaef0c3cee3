/**
 * Options shared by `download`, `seed` and `info --fetch` for the peer sources beyond trackers: the DHT
 * (`--no-dht`, `--dht-bootstrap host:port`...), peer exchange (`--no-pex`) and local service discovery (`--no-lsd`);
 * router port mapping (`--no-port-mapping`); and how connections to peers are
 * made: `--encryption prefer|require|off` (message stream encryption, docs/ENCRYPTION.md) and `--transport tcp|utp|both`
 * (uTP, docs/UTP.md).
 */
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as UtpTransport from "../net/UtpTransport.ts"
import * as Encryption from "../peer/Encryption.ts"
import type * as Client from "../session/Client.ts"
import { CliFailure, sanitizeText } from "./Output.ts"

export const noDhtOpt = Options.boolean("no-dht").pipe(
  Options.withDescription("do not use the DHT to find peers (private torrents never do)")
)
export const dhtBootstrapOpt = Options.text("dht-bootstrap").pipe(
  Options.withDescription("a DHT node to bootstrap from, host:port (repeatable; default: the public routers)"),
  Options.repeated
)
export const noPexOpt = Options.boolean("no-pex").pipe(
  Options.withDescription("do not exchange peers with peers (PEX; private torrents never do)")
)
export const noPortMappingOpt = Options.boolean("no-port-mapping").pipe(
  Options.withDescription("do not ask the router to forward the listening port (PCP, NAT-PMP, UPnP)")
)
export const noLsdOpt = Options.boolean("no-lsd").pipe(
  Options.withDescription("do not announce torrents on the local network or look for peers there (BEP 14 local " +
    "service discovery; private torrents never do)")
)

export const noWebSeedsOpt = Options.boolean("no-web-seeds").pipe(
  Options.withDescription("do not download from the torrents' web seeds (BEP 19 url-list, magnet ws=)")
)

export const encryptionOpt = Options.text("encryption").pipe(
  Options.withDescription(
    "message stream encryption: prefer (default: try encrypted first, fall back to plain; accept both), " +
      "require (encrypted connections only, RC4), off (plain BitTorrent only)"
  ),
  Options.optional
)

export const transportOpt = Options.text("transport").pipe(
  Options.withDescription(
    "how peers are dialled: tcp (default), utp (uTP, BEP 29, over UDP on the listening port number; inbound uTP " +
      "accepted too), both (uTP first, TCP when it does not connect)"
  ),
  Options.optional
)

/** The peer-source and connection options of every command that talks to peers, spread into its options. */
export const peerSourceOpts = {
  noDht: noDhtOpt,
  dhtBootstrap: dhtBootstrapOpt,
  noPex: noPexOpt,
  noLsd: noLsdOpt,
  noPortMapping: noPortMappingOpt,
  encryption: encryptionOpt,
  transport: transportOpt
} as const

/** What {@link peerSourceOpts} parse to. */
export interface PeerSourceInput {
  readonly noDht: boolean
  readonly dhtBootstrap: ReadonlyArray<string>
  readonly noPex: boolean
  readonly noLsd: boolean
  readonly noPortMapping: boolean
  readonly encryption: Option.Option<string>
  readonly transport: Option.Option<string>
}

/** `host:port` or `[v6]:port`. */
export const parseHostPort = (text: string): { host: string; port: number } | undefined => {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text)
  if (m === null) return undefined
  const port = Number(m[2])
  return port > 0 && port < 65536 ? { host: m[1]!, port } : undefined
}

/** `Client` options for the DHT, PEX, encryption and transport flags. */
export const peerSourceOptions = (input: {
  readonly noDht: boolean
  readonly dhtBootstrap: ReadonlyArray<string>
  readonly noPex: boolean
  readonly noLsd?: boolean | undefined
  readonly noWebSeeds?: boolean | undefined
  readonly noPortMapping?: boolean | undefined
  readonly encryption: Option.Option<string>
  readonly transport?: Option.Option<string> | undefined
}): Effect.Effect<Pick<Client.ClientOptions, "dht" | "pex" | "lsd" | "webSeeds" | "portMapping" | "encryption" | "transport">, CliFailure> =>
  Effect.gen(function*() {
    const encryption = Option.getOrElse(input.encryption, () => "prefer")
    if (!Encryption.isPolicy(encryption)) {
      return yield* new CliFailure({
        message: `--encryption ${sanitizeText(encryption)}: expected prefer, require or off`,
        exitCode: 2
      })
    }
    const transport = Option.getOrElse(input.transport ?? Option.none(), () => "tcp")
    if (!UtpTransport.isTransport(transport)) {
      return yield* new CliFailure({
        message: `--transport ${sanitizeText(transport)}: expected tcp, utp or both`,
        exitCode: 2
      })
    }
    const bootstrap: Array<{ host: string; port: number }> = []
    for (const b of input.dhtBootstrap) {
      const hp = parseHostPort(b)
      if (hp === undefined) {
        return yield* new CliFailure({ message: `--dht-bootstrap ${sanitizeText(b)}: expected host:port`, exitCode: 2 })
      }
      bootstrap.push(hp)
    }
    if (input.noDht && bootstrap.length > 0) {
      return yield* new CliFailure({ message: "--dht-bootstrap and --no-dht contradict each other", exitCode: 2 })
    }
    return {
      dht: input.noDht ? undefined : bootstrap.length > 0 ? { bootstrap } : {},
      pex: !input.noPex,
      lsd: input.noLsd !== true,
      webSeeds: input.noWebSeeds !== true,
      portMapping: input.noPortMapping !== true,
      encryption,
      transport
    }
  })
