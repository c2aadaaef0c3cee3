/**
 * The HTTP client layer the tracker uses: @effect/platform's HttpClient over node:http/node:https
 * (`NodeHttpClient`). Node's agent handles both schemes; redirects, timeouts and the body limit are applied by
 * the caller on top of this client.
 */
import type * as Https from "node:https"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Layer from "effect/Layer"

/** The default client: node:http(s) with a keep-alive agent scoped to the layer. */
export const layer: Layer.Layer<HttpClient.HttpClient> = NodeHttpClient.layer

/**
 * A client whose agent takes extra TLS options, e.g. `{ ca }` to trust a private certificate authority (tests use
 * this for a self-signed tracker).
 */
export const layerWithAgent = (options: Https.AgentOptions): Layer.Layer<HttpClient.HttpClient> =>
  NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer(options)))
