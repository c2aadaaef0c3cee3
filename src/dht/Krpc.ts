/**
 * KRPC (BEP 5): the bencoded messages of the mainline DHT, typed. `decode` treats every datagram as hostile: strict
 * bencode, a size limit, exact id lengths, bounded transaction ids and tokens, compact node lists whose length is a
 * multiple of the entry size; it never throws. Unknown keys are ignored; unknown query names decode to
 * {@link UnknownQuery} so the node can answer error 204. The client version `v` (BEP 5) and read-only flag `ro`
 * (BEP 43) are kept; `want` (BEP 32) and the requester's address `ip` (BEP 42) are read when well-formed.
 *
 * Responses do not name their method: the node matches them to its query by transaction id and reads the fields
 * it expects (`nodes`, `nodes6`, `values`, `token`).
 */
import * as Either from "effect/Either"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bytes from "../core/Bytes.ts"
import * as CompactPeers from "../tracker/CompactPeers.ts"
import { KrpcError } from "./KrpcError.ts"

export { KrpcError } from "./KrpcError.ts"

/** Datagrams larger than this are rejected unread (real ones stay under ~1.5 KiB). */
export const MAX_DATAGRAM = 4096
export const MAX_TRANSACTION_ID = 16
export const MAX_TOKEN = 64
export const ID_LENGTH = 20

/** A contact from a compact node list: 26 bytes (IPv4) or 38 bytes (IPv6) each. */
export interface NodeInfo {
  readonly id: Uint8Array
  readonly ip: string
  readonly port: number
}

/** An address (compact peer); `values` entries and the BEP 42 `ip` field. */
export interface Address {
  readonly ip: string
  readonly port: number
}

export type Want = "n4" | "n6"

interface Envelope {
  /** Transaction id, echoed by the response. */
  readonly t: Uint8Array
  /** Client version (`v`), kept as raw bytes. */
  readonly v?: Uint8Array | undefined
}

interface QueryBase extends Envelope {
  readonly _tag: "Query"
  /** The querying node's id. */
  readonly id: Uint8Array
  /** BEP 43: the querier is read-only; do not add it to the routing table. */
  readonly ro?: boolean | undefined
}

export interface Ping extends QueryBase {
  readonly method: "ping"
}
export interface FindNode extends QueryBase {
  readonly method: "find_node"
  readonly target: Uint8Array
  readonly want?: ReadonlyArray<Want> | undefined
}
export interface GetPeers extends QueryBase {
  readonly method: "get_peers"
  readonly infoHash: Uint8Array
  readonly want?: ReadonlyArray<Want> | undefined
}
export interface AnnouncePeer extends QueryBase {
  readonly method: "announce_peer"
  readonly infoHash: Uint8Array
  /** The announced port; 0 only together with `impliedPort`. */
  readonly port: number
  readonly token: Uint8Array
  /** Use the datagram's source port instead of `port`. */
  readonly impliedPort: boolean
}
/** A query with a method this module does not know: answer with error 204. `name` is a latin-1 binary string. */
export interface UnknownQuery extends QueryBase {
  readonly method: "unknown"
  readonly name: string
}

export type Query = Ping | FindNode | GetPeers | AnnouncePeer | UnknownQuery

export interface Response extends Envelope {
  readonly _tag: "Response"
  readonly id: Uint8Array
  readonly nodes?: ReadonlyArray<NodeInfo> | undefined
  readonly nodes6?: ReadonlyArray<NodeInfo> | undefined
  readonly values?: ReadonlyArray<Address> | undefined
  readonly token?: Uint8Array | undefined
  /** BEP 42: the address the responder saw us at. */
  readonly ip?: Address | undefined
}

export interface ErrorMessage extends Envelope {
  readonly _tag: "Error"
  readonly code: number
  readonly message: string
}

export type Message = Query | Response | ErrorMessage

export const ErrorCode = {
  generic: 201,
  server: 202,
  protocol: 203,
  methodUnknown: 204
} as const

// ---------------------------------------------------------------------------------------------------------------
// Encoding

const compactNodes = (nodes: ReadonlyArray<NodeInfo>, family: CompactPeers.Family): Uint8Array => {
  const size = family === 4 ? 26 : 38
  const rows = nodes.flatMap((n) => {
    const addr = CompactPeers.encode([n], family)
    return addr.length === size - 20 && n.id.length === 20 ? [Bytes.concat([n.id, addr])] : []
  })
  return Bytes.concat(rows)
}

const compactAddress = (a: Address): Uint8Array => {
  const v4 = CompactPeers.encode([a], 4)
  return v4.length > 0 ? v4 : CompactPeers.encode([a], 6)
}

type Dict = { readonly [key: string]: Bencode.Encodable | undefined }

const queryArgs = (q: Query): Dict => {
  switch (q.method) {
    case "ping":
    case "unknown":
      return { id: q.id }
    case "find_node":
      return { id: q.id, target: q.target, want: q.want }
    case "get_peers":
      return { id: q.id, info_hash: q.infoHash, want: q.want }
    case "announce_peer":
      return {
        id: q.id,
        info_hash: q.infoHash,
        port: q.port,
        token: q.token,
        implied_port: q.impliedPort ? 1 : undefined
      }
  }
}

/** Bencodes a message. Fields that cannot be represented (bad addresses) are left out. */
export const encode = (msg: Message): Uint8Array => {
  switch (msg._tag) {
    case "Query":
      return Bencode.encode({
        t: msg.t,
        y: "q",
        q: msg.method === "unknown" ? Bytes.fromBinaryString(msg.name) : msg.method,
        a: queryArgs(msg),
        v: msg.v,
        ro: msg.ro === true ? 1 : undefined
      })
    case "Response":
      return Bencode.encode({
        t: msg.t,
        y: "r",
        r: {
          id: msg.id,
          nodes: msg.nodes && compactNodes(msg.nodes, 4),
          nodes6: msg.nodes6 && compactNodes(msg.nodes6, 6),
          values: msg.values?.map(compactAddress).filter((b) => b.length > 0),
          token: msg.token
        },
        ip: msg.ip && compactAddress(msg.ip),
        v: msg.v
      })
    case "Error":
      return Bencode.encode({ t: msg.t, y: "e", e: [msg.code, msg.message], v: msg.v })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

class Invalid {
  readonly reason: "missing-field" | "invalid-field"
  readonly detail: string
  constructor(reason: "missing-field" | "invalid-field", detail: string) {
    this.reason = reason
    this.detail = detail
  }
}

const missing = (key: string): never => {
  throw new Invalid("missing-field", `missing "${key}"`)
}
const invalid = (detail: string): never => {
  throw new Invalid("invalid-field", detail)
}

const bytesField = (d: Bencode.BDict, key: string, min: number, max: number): Uint8Array => {
  const v = d.get(key)
  if (v === undefined) return missing(key)
  if (!Bencode.isBytes(v)) return invalid(`"${key}" is not a byte string`)
  if (v.length < min || v.length > max) {
    return invalid(`"${key}" has ${v.length} bytes, expected ${min === max ? min : `${min}..${max}`}`)
  }
  return v
}

const optionalBytes = (d: Bencode.BDict, key: string, max: number): Uint8Array | undefined =>
  d.has(key) ? bytesField(d, key, 0, max) : undefined

const decodeNodes = (bytes: Uint8Array, family: CompactPeers.Family, key: string): Array<NodeInfo> => {
  const size = family === 4 ? 26 : 38
  if (bytes.length % size !== 0) invalid(`"${key}" of ${bytes.length} bytes is not a multiple of ${size}`)
  const out: Array<NodeInfo> = []
  for (let off = 0; off < bytes.length; off += size) {
    const addr = CompactPeers.decode(bytes.subarray(off + 20, off + size), family)
    // Port 0 entries are dropped: nobody can be reached there.
    if (Either.isRight(addr) && addr.right[0] !== undefined) {
      out.push({ id: bytes.slice(off, off + 20), ip: addr.right[0].ip, port: addr.right[0].port })
    }
  }
  return out
}

const decodeAddress = (bytes: Uint8Array): Address | undefined => {
  const family = bytes.length === 6 ? 4 : bytes.length === 18 ? 6 : undefined
  if (family === undefined) return undefined
  const peers = CompactPeers.decode(bytes, family)
  return Either.isRight(peers) ? peers.right[0] : undefined
}

const decodeWant = (d: Bencode.BDict): Array<Want> | undefined => {
  const w = d.get("want")
  if (w === undefined) return undefined
  if (!Bencode.isList(w) || w.length > 8) return invalid(`"want" is not a short list`)
  const out: Array<Want> = []
  for (const x of w) {
    if (!Bencode.isBytes(x)) return invalid(`"want" holds a non-string`)
    const s = Bytes.toBinaryString(x)
    // Other families are ignored, as BEP 32 asks.
    if ((s === "n4" || s === "n6") && !out.includes(s)) out.push(s)
  }
  return out
}

const decodeQuery = (top: Bencode.BDict, t: Uint8Array, v: Uint8Array | undefined): Query => {
  const q = bytesField(top, "q", 1, 64)
  const a = top.get("a")
  if (a === undefined) return missing("a")
  if (!Bencode.isDict(a)) return invalid(`"a" is not a dictionary`)
  const id = bytesField(a, "id", ID_LENGTH, ID_LENGTH).slice()
  const ro = top.get("ro") === 1 ? true : undefined
  const base = { _tag: "Query" as const, t, id, ...(v === undefined ? {} : { v }), ...(ro ? { ro } : {}) }
  const name = Bytes.toBinaryString(q)
  switch (name) {
    case "ping":
      return { ...base, method: "ping" }
    case "find_node": {
      const want = decodeWant(a)
      const target = bytesField(a, "target", ID_LENGTH, ID_LENGTH).slice()
      return { ...base, method: "find_node", target, ...(want === undefined ? {} : { want }) }
    }
    case "get_peers": {
      const want = decodeWant(a)
      const infoHash = bytesField(a, "info_hash", ID_LENGTH, ID_LENGTH).slice()
      return { ...base, method: "get_peers", infoHash, ...(want === undefined ? {} : { want }) }
    }
    case "announce_peer": {
      const infoHash = bytesField(a, "info_hash", ID_LENGTH, ID_LENGTH).slice()
      const token = bytesField(a, "token", 1, MAX_TOKEN).slice()
      const implied = a.get("implied_port")
      if (implied !== undefined && implied !== 0 && implied !== 1) invalid(`"implied_port" is not 0 or 1`)
      const impliedPort = implied === 1
      const port = a.get("port")
      if (port === undefined && !impliedPort) return missing("port")
      const p = port ?? 0
      if (typeof p !== "number" || p < 0 || p > 65535) return invalid(`"port" is not a port number`)
      if (p === 0 && !impliedPort) return invalid(`"port" is 0`)
      return { ...base, method: "announce_peer", infoHash, port: p, token, impliedPort }
    }
    default:
      return { ...base, method: "unknown", name }
  }
}

const decodeResponse = (top: Bencode.BDict, t: Uint8Array, v: Uint8Array | undefined): Response => {
  const r = top.get("r")
  if (r === undefined) return missing("r")
  if (!Bencode.isDict(r)) return invalid(`"r" is not a dictionary`)
  const id = bytesField(r, "id", ID_LENGTH, ID_LENGTH).slice()
  const nodesBytes = optionalBytes(r, "nodes", MAX_DATAGRAM)
  const nodes6Bytes = optionalBytes(r, "nodes6", MAX_DATAGRAM)
  const token = optionalBytes(r, "token", MAX_TOKEN)
  let values: Array<Address> | undefined
  const vs = r.get("values")
  if (vs !== undefined) {
    if (!Bencode.isList(vs)) return invalid(`"values" is not a list`)
    values = []
    for (const x of vs) {
      if (!Bencode.isBytes(x) || (x.length !== 6 && x.length !== 18)) {
        return invalid(`"values" holds an entry that is not a 6- or 18-byte compact peer`)
      }
      const addr = decodeAddress(x)
      if (addr !== undefined) values.push(addr)
    }
  }
  const ipBytes = top.get("ip")
  const ip = Bencode.isBytes(ipBytes) ? decodeAddress(ipBytes) : undefined
  return {
    _tag: "Response",
    t,
    id,
    ...(v === undefined ? {} : { v }),
    ...(nodesBytes === undefined ? {} : { nodes: decodeNodes(nodesBytes, 4, "nodes") }),
    ...(nodes6Bytes === undefined ? {} : { nodes6: decodeNodes(nodes6Bytes, 6, "nodes6") }),
    ...(values === undefined ? {} : { values }),
    ...(token === undefined ? {} : { token: token.slice() }),
    ...(ip === undefined ? {} : { ip })
  }
}

const decodeError = (top: Bencode.BDict, t: Uint8Array, v: Uint8Array | undefined): ErrorMessage => {
  const e = top.get("e")
  if (e === undefined) return missing("e")
  if (!Bencode.isList(e) || e.length < 2) return invalid(`"e" is not a [code, message] list`)
  const [code, text] = e
  if (typeof code !== "number") return invalid(`error code is not an integer`)
  if (!Bencode.isBytes(text)) return invalid(`error message is not a string`)
  const message = Bytes.decodeUtf8(text) ?? Bytes.toBinaryString(text)
  return { _tag: "Error", t, code, message, ...(v === undefined ? {} : { v }) }
}

/** Decodes one datagram. Never throws. */
export const decode = (bytes: Uint8Array): Either.Either<Message, KrpcError> => {
  if (bytes.length > MAX_DATAGRAM) {
    return Either.left(new KrpcError({ reason: "too-large", detail: `${bytes.length} bytes`, isQuery: false }))
  }
  // Copy out of the input: decoded byte strings must not alias node's datagram buffer.
  const parsed = Bencode.decode(bytes, { copy: true })
  if (Either.isLeft(parsed)) {
    return Either.left(new KrpcError({ reason: "bencode", detail: parsed.left.message, isQuery: false }))
  }
  const top = parsed.right
  if (!Bencode.isDict(top)) {
    return Either.left(new KrpcError({ reason: "not-a-dict", detail: "top-level value", isQuery: false }))
  }
  const tRaw = top.get("t")
  const t = Bencode.isBytes(tRaw) && tRaw.length <= MAX_TRANSACTION_ID ? tRaw : undefined
  const yRaw = top.get("y")
  const y = Bencode.isBytes(yRaw) ? Bytes.toBinaryString(yRaw) : undefined
  const isQuery = y === "q"
  try {
    if (t === undefined) return top.has("t") ? invalid(`"t" is not a short byte string`) : missing("t")
    const vRaw = top.get("v")
    const v = Bencode.isBytes(vRaw) ? vRaw : undefined
    switch (y) {
      case "q":
        return Either.right(decodeQuery(top, t, v))
      case "r":
        return Either.right(decodeResponse(top, t, v))
      case "e":
        return Either.right(decodeError(top, t, v))
      case undefined:
        return missing("y")
      default:
        return invalid(`unknown message type "y"`)
    }
  } catch (e) {
    const reason = e instanceof Invalid ? e.reason : "invalid-field"
    const detail = e instanceof Invalid ? e.detail : String(e)
    return Either.left(new KrpcError({ reason, detail, transactionId: t, isQuery }))
  }
}
