/**
 * Typed client for the PTO Connect API.
 *
 * The types in `./schema.ts` are generated from `docs/openapi.json` by
 * `cargo xtask openapi` (openapi-typescript); never edit them by hand. The runtime is
 * openapi-fetch: a thin `fetch` wrapper whose paths, parameters, bodies and responses
 * are checked against those types.
 *
 * @example
 * const api = createPtoClient("http://127.0.0.1:8080", token);
 * const { data, error, response } = await api.GET("/api/v2/orgs/{org_id}", {
 *   params: { path: { org_id } },
 * });
 */
import createClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

/** Every named schema of the API (`Schemas["MemberView"]`, …). */
export type Schemas = components["schemas"];

/** The client: `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, … typed by the API's paths. */
export type PtoClient = Client<paths>;

/** A bearer token, or a function read before every request (for refreshing tokens). */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

/** Options passed through to openapi-fetch (custom `fetch`, default headers, …). */
export type PtoClientOptions = Omit<ClientOptions, "baseUrl">;

/**
 * A client for the server at `baseUrl` (e.g. `https://pto.example.org`; the paths carry
 * `/api/v2`). With `token`, every request without its own `Authorization` header sends
 * `Authorization: Bearer <token>`.
 */
export function createPtoClient(
  baseUrl: string,
  token?: TokenSource,
  options: PtoClientOptions = {},
): PtoClient {
  const client = createClient<paths>({ ...options, baseUrl: baseUrl.replace(/\/+$/, "") });
  if (token !== undefined) {
    client.use(bearer(token));
  }
  return client;
}

/** A middleware adding `Authorization: Bearer <token>` when the request has none. */
export function bearer(token: TokenSource): Middleware {
  return {
    async onRequest({ request }) {
      if (request.headers.has("authorization")) {
        return undefined;
      }
      const value = typeof token === "function" ? await token() : token;
      if (value) {
        request.headers.set("authorization", `Bearer ${value}`);
      }
      return request;
    },
  };
}

export { createClient };
