/**
 * The pure halves of port mapping: PCP MAP requests and responses round-trip, have RFC 6887's layout, a NAT-PMP
 * "unsupported version" answer is told apart, and decoding never throws; NAT-PMP responses round-trip and never throw on arbitrary bytes, requests have
 * RFC 6886's layout, the default gateway is read from /proc/net/route text; UPnP's SSDP answers, device
 * descriptions (service preference, URLBase and relative control URLs) and SOAP answers and faults are read, and
 * none of these readers throws on arbitrary text.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Igd from "../../src/net/Igd.ts"
import * as NatPmp from "../../src/net/NatPmp.ts"
import * as Pcp from "../../src/net/Pcp.ts"

const u16 = FastCheck.integer({ min: 0, max: 0xffff })
const u32 = FastCheck.integer({ min: 0, max: 0xffffffff })
const ipv4 = FastCheck.tuple(...Array.from({ length: 4 }, () => FastCheck.integer({ min: 0, max: 255 }))).map((o) => o.join("."))

const response: FastCheck.Arbitrary<NatPmp.Response> = FastCheck.oneof(
  FastCheck.record({
    _tag: FastCheck.constant("ExternalAddress" as const),
    result: FastCheck.constant(0),
    epoch: u32,
    address: ipv4
  }),
  FastCheck.record({
    _tag: FastCheck.constant("Mapping" as const),
    protocol: FastCheck.constantFrom("udp" as const, "tcp" as const),
    result: u16,
    epoch: u32,
    internalPort: u16,
    externalPort: u16,
    lifetime: u32
  })
)

describe("NAT-PMP codec", () => {
  it("responses round-trip", () => {
    FastCheck.assert(FastCheck.property(response, (r) => {
      expect(NatPmp.decode(NatPmp.encodeResponse(r))).toEqual(Either.right(r))
    }))
  })

  it("never throws on arbitrary bytes", () => {
    FastCheck.assert(FastCheck.property(FastCheck.uint8Array({ maxLength: 64 }), (b) => {
      NatPmp.decode(b)
    }))
  })

  it("requests have RFC 6886's layout", () => {
    expect([...NatPmp.externalAddressRequest()]).toEqual([0, 0])
    expect([...NatPmp.mappingRequest("tcp", 6881, 6882, 7200)]).toEqual([0, 2, 0, 0, 0x1a, 0xe1, 0x1a, 0xe2, 0, 0, 0x1c, 0x20])
    expect([...NatPmp.mappingRequest("udp", 1, 0, 0)]).toEqual([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
  })

  it("an error answer cut after the epoch still says its result", () => {
    expect(NatPmp.decode(new Uint8Array([0, 130, 0, 2, 0, 0, 0, 9]))).toEqual(
      Either.right({ _tag: "Mapping", protocol: "tcp", result: 2, epoch: 9, internalPort: 0, externalPort: 0, lifetime: 0 })
    )
    expect(NatPmp.resultText(2)).toBe("not authorized or refused")
  })

  it("reads the default gateway from /proc/net/route, and nothing from other text", () => {
    const route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
      "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
      "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    expect(NatPmp.defaultGateway(route)).toBe("192.168.0.1")
    expect(NatPmp.defaultGateway(route.split("\n").slice(0, 2).join("\n"))).toBeUndefined()
    FastCheck.assert(FastCheck.property(FastCheck.string({ maxLength: 300 }), (t) => {
      const g = NatPmp.defaultGateway(t)
      if (g !== undefined) expect(g).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    }))
  })
})

const description = (services: ReadonlyArray<{ type: string; control: string }>, urlBase?: string) =>
  `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">` +
  (urlBase === undefined ? "" : `<URLBase>${urlBase}</URLBase>`) +
  `<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><serviceList>` +
  services.map((s) => `<service><serviceType>${s.type}</serviceType><controlURL>${s.control}</controlURL></service>`).join("") +
  `</serviceList></device></root>`

describe("PCP MAP codec", () => {
  const nonce = FastCheck.uint8Array({ minLength: 12, maxLength: 12 })
  const protocol = FastCheck.constantFrom("udp" as const, "tcp" as const)

  it("a request has RFC 6887's layout: version 2, MAP, lifetime, our address as ::ffff:a.b.c.d, nonce, protocol, ports", () => {
    const n = Uint8Array.from({ length: 12 }, (_, i) => i + 1)
    const b = Either.getOrThrow(Pcp.mapRequest({ nonce: n, protocol: "tcp", internalPort: 6881, suggestedPort: 6882, lifetime: 7200, clientAddress: "10.0.0.2" }))
    expect(Buffer.from(b).toString("hex")).toBe(
      "0201" + "0000" + "00001c20" + "00000000000000000000ffff0a000002" +
        "0102030405060708090a0b0c" + "06" + "000000" + "1ae1" + "1ae2" + "00000000000000000000ffff00000000"
    )
  })

  it("requests round-trip through what a gateway reads", () =>
    FastCheck.assert(FastCheck.property(nonce, protocol, u16, u16, u32, ipv4, (n, p, internalPort, suggestedPort, lifetime, clientAddress) => {
      const b = Either.getOrThrow(Pcp.mapRequest({ nonce: n, protocol: p, internalPort, suggestedPort, lifetime, clientAddress }))
      expect(Pcp.readRequest(b)).toEqual({ nonce: n, protocol: p === "tcp" ? 6 : 17, internalPort, lifetime, client: clientAddress })
    })))

  it("responses round-trip", () =>
    FastCheck.assert(FastCheck.property(nonce, protocol, FastCheck.integer({ min: 0, max: 255 }), u32, u32, u16, u16, ipv4, (n, p, result, lifetime, epoch, internalPort, externalPort, externalAddress) => {
      const r = { result, lifetime, epoch, nonce: n, protocol: p, internalPort, externalPort, externalAddress }
      expect(Either.getOrThrow(Pcp.decode(Pcp.mapResponse(r)))).toEqual({ _tag: "Map", ...r })
    })))

  it("a NAT-PMP gateway's 'unsupported version' answer means NAT-PMP only; other NAT-PMP answers and requests are not answers", () => {
    expect(Pcp.decode(new Uint8Array([0, 129, 0, 1, 0, 0, 0, 9]))).toEqual(Either.right({ _tag: "NatPmpOnly" }))
    expect(Either.isLeft(Pcp.decode(new Uint8Array([0, 129, 0, 0, 0, 0, 0, 9])))).toBe(true)
    const request = Either.getOrThrow(Pcp.mapRequest({ nonce: new Uint8Array(12), protocol: "udp", internalPort: 1, suggestedPort: 0, lifetime: 1, clientAddress: "1.2.3.4" }))
    expect(Either.isLeft(Pcp.decode(request))).toBe(true)
    expect(Either.isLeft(Pcp.mapRequest({ nonce: new Uint8Array(12), protocol: "udp", internalPort: 1, suggestedPort: 0, lifetime: 1, clientAddress: "::1" }))).toBe(true)
  })

  it("decoding never throws on arbitrary bytes", () =>
    FastCheck.assert(FastCheck.property(FastCheck.uint8Array({ maxLength: 200 }), (b) => {
      Pcp.decode(b)
      Pcp.readRequest(b)
    })))
})

describe("UPnP IGD texts", () => {
  it("reads an SSDP answer's location, only from a 200 with an http URL", () => {
    const ok = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
      "Location: http://10.88.0.1:5000/rootDesc.xml\r\n\r\n"
    expect(Igd.searchLocation(ok)).toBe("http://10.88.0.1:5000/rootDesc.xml")
    expect(Igd.searchLocation(ok.replace("200 OK", "404 Not Found"))).toBeUndefined()
    expect(Igd.searchLocation(ok.replace("http://", "file://"))).toBeUndefined()
    expect(Igd.searchLocation("NOTIFY * HTTP/1.1\r\nLOCATION: http://x/\r\n\r\n")).toBeUndefined()
  })

  it("prefers WANIPConnection:2, then :1, then WANPPPConnection, resolving control URLs", () => {
    const loc = "http://10.0.0.1:5000/desc.xml"
    const d = description([
      { type: "urn:schemas-upnp-org:service:WANPPPConnection:1", control: "/ppp" },
      { type: "urn:schemas-upnp-org:service:WANIPConnection:1", control: "/ctl/ip1" },
      { type: "urn:schemas-upnp-org:service:Layer3Forwarding:1", control: "/l3f" }
    ])
    expect(Igd.findControl(d, loc)).toEqual(Either.right({
      serviceType: "urn:schemas-upnp-org:service:WANIPConnection:1",
      controlUrl: "http://10.0.0.1:5000/ctl/ip1"
    }))
    const withBase = description([{ type: "urn:schemas-upnp-org:service:WANIPConnection:2", control: "ctl" }], "http://10.0.0.1:49000/igd/")
    expect(Igd.findControl(withBase, loc)).toEqual(Either.right({
      serviceType: "urn:schemas-upnp-org:service:WANIPConnection:2",
      controlUrl: "http://10.0.0.1:49000/igd/ctl"
    }))
    expect(Either.isLeft(Igd.findControl(description([]), loc))).toBe(true)
  })

  it("reads SOAP answers and faults (with the UPnP error code)", () => {
    const ok = `<s:Envelope><s:Body><u:GetExternalIPAddressResponse xmlns:u="x">` +
      `<NewExternalIPAddress>5.5.5.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`
    expect(Igd.soapResponse(200, ok, ["NewExternalIPAddress"])).toEqual(Either.right({ NewExternalIPAddress: "5.5.5.1" }))
    const fault = `<s:Envelope><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>` +
      `<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode>` +
      `<errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`
    const f = Igd.soapResponse(500, fault, [])
    expect(Either.isLeft(f) && f.left.code).toBe(718)
    expect(Either.isLeft(f) && f.left.message).toBe("UPnP: ConflictInMappingEntry (718) [HTTP 500]")
  })

  it("AddPortMapping's body carries the arguments, escaped", () => {
    const r = Igd.addPortMapping("urn:schemas-upnp-org:service:WANIPConnection:1", {
      protocol: "TCP",
      externalPort: 6881,
      internalPort: 6881,
      internalClient: "10.0.0.2",
      lease: 3600,
      description: "a<b&c"
    })
    expect(r.soapAction).toBe("\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"")
    expect(r.body).toContain("<NewExternalPort>6881</NewExternalPort><NewProtocol>TCP</NewProtocol>")
    expect(r.body).toContain("<NewPortMappingDescription>a&lt;b&amp;c</NewPortMappingDescription>")
  })

  it("no reader throws on arbitrary text", () => {
    FastCheck.assert(FastCheck.property(FastCheck.string({ maxLength: 500 }), FastCheck.integer({ min: 0, max: 600 }), (t, status) => {
      Igd.searchLocation(t)
      Igd.findControl(t, "http://10.0.0.1/")
      Igd.soapResponse(status, t, ["NewExternalIPAddress"])
    }))
  })
})
