/**
 * UPnP Internet Gateway Device, the parts a BitTorrent client needs, as pure text functions (the I/O is in
 * PortMapping.ts): the SSDP search and its answers, the device description (which service, which control URL),
 * and the SOAP actions GetExternalIPAddress, AddPortMapping and DeletePortMapping with their answers and faults.
 * Nothing here throws: answers come from whatever device is on the LAN.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

export const SSDP_GROUP = "239.255.255.250"
export const SSDP_PORT = 1900

export const DEVICE_TYPES = [
  "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
  "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
] as const

/** Services able to map ports, in order of preference. */
export const SERVICE_TYPES = [
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1"
] as const

export class IgdError extends Data.TaggedError("IgdError")<{
  readonly detail: string
  /** The UPnP error code of a SOAP fault (e.g. 718 ConflictInMappingEntry). */
  readonly code?: number | undefined
}> {
  override get message(): string {
    return `UPnP: ${this.detail}`
  }
}

export const searchRequest = (searchTarget: string): string =>
  [
    "M-SEARCH * HTTP/1.1",
    `HOST: ${SSDP_GROUP}:${SSDP_PORT}`,
    "MAN: \"ssdp:discover\"",
    "MX: 2",
    `ST: ${searchTarget}`,
    "",
    ""
  ].join("\r\n")

/** The `LOCATION` of an SSDP answer (`HTTP/1.1 200 OK`), when it is an http URL. */
export const searchLocation = (answer: string): string | undefined => {
  const lines = answer.split(/\r?\n/)
  if (!/^HTTP\/1\.[01] 200\b/.test(lines[0] ?? "")) return undefined
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":")
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== "location") continue
    const value = line.slice(colon + 1).trim()
    try {
      const url = new URL(value)
      return url.protocol === "http:" ? url.href : undefined
    } catch {
      return undefined
    }
  }
  return undefined
}

const textOf = (xml: string, tag: string): string | undefined => {
  const m = new RegExp(`<(?:[A-Za-z0-9_]+:)?${tag}(?:\\s[^>]*)?>([^<]*)</(?:[A-Za-z0-9_]+:)?${tag}\\s*>`).exec(xml)
  return m === null ? undefined : unescapeXml(m[1]!.trim())
}

export interface Control {
  readonly serviceType: string
  readonly controlUrl: string
}

/** The best port-mapping service of a device description, its control URL resolved against `location`. */
export const findControl = (description: string, location: string): Either.Either<Control, IgdError> => {
  const base = textOf(description, "URLBase") ?? location
  const services: Array<Control> = []
  const re = /<(?:[A-Za-z0-9_]+:)?service(?:\s[^>]*)?>([\s\S]*?)<\/(?:[A-Za-z0-9_]+:)?service\s*>/g
  for (let m = re.exec(description); m !== null; m = re.exec(description)) {
    const type = textOf(m[1]!, "serviceType")
    const control = textOf(m[1]!, "controlURL")
    if (type === undefined || control === undefined) continue
    try {
      const url = new URL(control, base)
      if (url.protocol === "http:") services.push({ serviceType: type, controlUrl: url.href })
    } catch {
      continue
    }
  }
  for (const wanted of SERVICE_TYPES) {
    const s = services.find((c) => c.serviceType === wanted)
    if (s !== undefined) return Either.right(s)
  }
  return Either.left(new IgdError({ detail: "the device offers no WANIPConnection or WANPPPConnection service" }))
}

const escapeXml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;")

const unescapeXml = (s: string): string =>
  s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, "\"").replace(/&apos;/g, "'").replace(/&amp;/g, "&")

export interface SoapRequest {
  readonly body: string
  /** The `SOAPAction` header's value (quoted). */
  readonly soapAction: string
}

export const soapRequest = (
  serviceType: string,
  action: string,
  args: ReadonlyArray<readonly [string, string | number]>
): SoapRequest => ({
  soapAction: `"${serviceType}#${action}"`,
  body: "<?xml version=\"1.0\"?>\r\n" +
    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" " +
    "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>" +
    `<u:${action} xmlns:u="${escapeXml(serviceType)}">` +
    args.map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>`).join("") +
    `</u:${action}></s:Body></s:Envelope>\r\n`
})

export const addPortMapping = (
  serviceType: string,
  m: {
    readonly protocol: "TCP" | "UDP"
    readonly externalPort: number
    readonly internalPort: number
    readonly internalClient: string
    readonly lease: number
    readonly description: string
  }
): SoapRequest =>
  soapRequest(serviceType, "AddPortMapping", [
    ["NewRemoteHost", ""],
    ["NewExternalPort", m.externalPort],
    ["NewProtocol", m.protocol],
    ["NewInternalPort", m.internalPort],
    ["NewInternalClient", m.internalClient],
    ["NewEnabled", 1],
    ["NewPortMappingDescription", m.description],
    ["NewLeaseDuration", m.lease]
  ])

export const deletePortMapping = (serviceType: string, protocol: "TCP" | "UDP", externalPort: number): SoapRequest =>
  soapRequest(serviceType, "DeletePortMapping", [
    ["NewRemoteHost", ""],
    ["NewExternalPort", externalPort],
    ["NewProtocol", protocol]
  ])

export const getExternalIpAddress = (serviceType: string): SoapRequest =>
  soapRequest(serviceType, "GetExternalIPAddress", [])

/**
 * An action's answer: its output arguments by name, or the fault (UPnP error code and description) a device sends
 * with HTTP 500.
 */
export const soapResponse = (
  status: number,
  xml: string,
  outputs: ReadonlyArray<string>
): Either.Either<Record<string, string>, IgdError> => {
  const fault = /<(?:[A-Za-z0-9_]+:)?Fault[\s>]/.test(xml)
  if (status !== 200 || fault) {
    const code = textOf(xml, "errorCode")
    const description = textOf(xml, "errorDescription") ?? textOf(xml, "faultstring")
    const n = code === undefined ? undefined : Number(code)
    return Either.left(new IgdError({
      detail: `${description ?? "fault"}${code === undefined ? "" : ` (${code})`}${status !== 200 ? ` [HTTP ${status}]` : ""}`
        .slice(0, 200),
      code: n !== undefined && Number.isInteger(n) ? n : undefined
    }))
  }
  const out: Record<string, string> = {}
  for (const name of outputs) {
    const v = textOf(xml, name)
    if (v === undefined) return Either.left(new IgdError({ detail: `answer without ${name}` }))
    out[name] = v
  }
  return Either.right(out)
}
