/**
 * End to end: the real server binary, a fresh data directory (SQLite, no Redis, mail as
 * `.eml` files), and a front end's main journey through the typed client — register,
 * prove the address, sign in, create an org, invite a member who accepts, change a
 * permission and a grant, check them, search, export (a job: start, poll, download),
 * read the audit log.
 *
 * The binary is `PTO_SERVER_BIN`, else `$CARGO_TARGET_DIR/debug/pto-server`, else
 * `<repo>/target/debug/pto-server`. Run: `npm run test:e2e` (in clients/typescript).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { createPtoClient, type PtoClient, type Schemas } from "../src/index.js";

const PASSWORD = "correct horse battery staple";
const PUBLIC_BASE_URL = "http://pto.e2e.test";
const STARTUP_TIMEOUT_MS = 60_000;

/** The repository root: the first parent of this file holding `Cargo.lock`. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "Cargo.lock"))) {
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error("repository root (Cargo.lock) not found above the test file");
    }
    dir = parent;
  }
  return dir;
}

function serverBinary(): string {
  const fromEnv = process.env["PTO_SERVER_BIN"];
  if (fromEnv) {
    return fromEnv;
  }
  const target = process.env["CARGO_TARGET_DIR"] ?? path.join(repoRoot(), "target");
  return path.join(target, "debug", "pto-server");
}

interface Server {
  child: ChildProcess;
  dataDir: string;
  baseUrl: string;
  log: string[];
}

let server: Server | undefined;

/** Starts the binary on a port the OS picks; resolves once it has announced the port. */
async function startServer(): Promise<Server> {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(
      `server binary ${bin} not found: build it with \`cargo build -p pto-server\` or set PTO_SERVER_BIN`,
    );
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), "pto-e2e-"));
  // A clean environment: no DATABASE_URL / REDIS_URL / SMTP_URL leaking in from the shell.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    DATA_DIR: dataDir,
    BIND_ADDR: "127.0.0.1:0",
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
    WORKERS: "2",
    PUBLIC_BASE_URL,
  };
  const child = spawn(bin, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  const log: string[] = [];
  const keep = (line: string) => {
    log.push(line);
    if (log.length > 400) {
      log.shift();
    }
  };
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => keep(chunk));
  const lines = createInterface({ input: child.stdout! });

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not announce its port in ${STARTUP_TIMEOUT_MS} ms`)),
        STARTUP_TIMEOUT_MS,
      );
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited during start-up (${code ?? signal}):\n${log.join("\n")}`));
      });
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      lines.on("line", (line) => {
        keep(line);
        try {
          const event = JSON.parse(line) as { message?: string; port?: number; fields?: { message?: string; port?: number } };
          const message = event.message ?? event.fields?.message;
          const announced = event.port ?? event.fields?.port;
          if (message === "pto-server listening" && typeof announced === "number") {
            clearTimeout(timer);
            resolve(announced);
          }
        } catch {
          // Not JSON (a panic message, …): kept in the log only.
        }
      });
    });
  } catch (err) {
    // Nothing left behind when the start fails.
    await stopServer({ child, dataDir, baseUrl: "", log });
    throw err;
  }
  return { child, dataDir, baseUrl: `http://127.0.0.1:${port}`, log };
}

async function stopServer(s: Server): Promise<void> {
  const { child } = s;
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const within = (ms: number) =>
      Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    child.kill("SIGTERM");
    if (!(await within(15_000))) {
      child.kill("SIGKILL");
      await within(5_000);
    }
  }
  await rm(s.dataDir, { recursive: true, force: true });
}

/** The running server. */
function current(): Server {
  assert.ok(server, "server started");
  return server;
}

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** Asserts the status and returns the typed body. */
function expectOk<T>(outcome: Outcome<T>, status: number, what: string): T {
  assert.equal(
    outcome.response.status,
    status,
    `${what}: HTTP ${outcome.response.status} ${JSON.stringify(outcome.error)}`,
  );
  assert.ok(outcome.data !== undefined, `${what}: a body`);
  return outcome.data;
}

/** Asserts the status and the error code of a refusal. */
function expectError(outcome: Outcome<unknown>, status: number, code: Schemas["ErrorCode"], what: string): void {
  assert.equal(outcome.response.status, status, `${what}: HTTP ${outcome.response.status}`);
  const error = outcome.error as Schemas["ErrorEnvelope"] | undefined;
  assert.equal(error?.success, false, `${what}: an error envelope`);
  assert.equal(error?.error.code, code, `${what}: ${JSON.stringify(error)}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 100 ms until it returns a value, for at most `ms`. */
async function eventually<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(100);
  }
}

/**
 * The token of the newest `path?token=` link mailed to `to`, read from the `.eml`
 * files the server writes under `DATA_DIR/outbox/` when `SMTP_URL` is unset.
 */
async function mailedToken(to: string, linkPath: string): Promise<string> {
  const outbox = path.join(current().dataDir, "outbox");
  const marker = `${PUBLIC_BASE_URL}${linkPath}?token=`;
  return eventually(`a ${linkPath} link mailed to ${to}`, 15_000, async () => {
    const names = existsSync(outbox) ? (await readdir(outbox)).filter((n) => n.endsWith(".eml")) : [];
    for (const name of names.sort().reverse()) {
      // Quoted-printable: undo soft line breaks and the escaped `=`.
      const text = (await readFile(path.join(outbox, name), "utf8"))
        .replace(/=\r?\n/g, "")
        .replace(/=3D/g, "=");
      const header = text.split(/\r?\n\r?\n/, 1)[0] ?? "";
      if (!/^To:.*$/im.exec(header)?.[0].includes(to)) {
        continue;
      }
      const at = text.lastIndexOf(marker);
      if (at >= 0) {
        const token = /^[0-9a-f]+/i.exec(text.slice(at + marker.length))?.[0];
        if (token) {
          return token;
        }
      }
    }
    return undefined;
  });
}

/** Registers, proves the address from the mailed link, signs in. */
async function signUp(
  anonymous: PtoClient,
  email: string,
  firstName: string,
  lastName: string,
): Promise<{ user: Schemas["UserView"]; token: string }> {
  const registered = expectOk(
    await anonymous.POST("/api/v2/auth/register", {
      body: { email, password: PASSWORD, first_name: firstName, last_name: lastName },
    }),
    201,
    `register ${email}`,
  );
  assert.equal(registered.success, true);
  assert.equal(registered.data.email, email);
  assert.equal(registered.data.first_name, firstName);
  assert.match(registered.data.id, /^[0-9a-f-]{36}$/);

  const token = await mailedToken(email, "/verify-email");
  const verified = expectOk(
    await anonymous.POST("/api/v2/auth/verify-email", { body: { token } }),
    200,
    `verify ${email}`,
  );
  assert.equal(verified.data.verified, true);

  const login = expectOk(
    await anonymous.POST("/api/v2/auth/login", { body: { email, password: PASSWORD } }),
    200,
    `login ${email}`,
  );
  const session = login.data;
  assert.ok("token" in session, "no second factor on a new account");
  assert.equal(session.user.id, registered.data.id);
  assert.ok(session.token.length > 0);
  assert.ok(session.refresh_token.length > 0);
  assert.ok(Date.parse(session.expires_at) > Date.now(), "the access token is not expired");
  return { user: registered.data, token: session.token };
}

before(async () => {
  server = await startServer();
  const anonymous = createPtoClient(server.baseUrl);
  const health = expectOk(await anonymous.GET("/health"), 200, "GET /health");
  assert.equal(health.success, true);
});

after(async () => {
  if (server) {
    const s = server;
    server = undefined;
    await stopServer(s);
    assert.ok(!existsSync(s.dataDir), "the data directory is removed");
  }
});

test("a front end's main journey through the typed client", async () => {
  const s = current();
  try {
    await journey(s);
  } catch (err) {
    // The server's recent log explains most failures.
    process.stderr.write(`--- server log (last lines) ---\n${s.log.slice(-60).join("\n")}\n`);
    throw err;
  }
});

async function journey(s: Server): Promise<void> {
  const anonymous = createPtoClient(s.baseUrl);

  // Unauthenticated calls are refused with a typed error envelope.
  expectError(await anonymous.GET("/api/v2/me"), 401, "UNAUTHENTICATED", "GET /me without a token");

  // 1. Sign up and sign in: the admin-to-be and a parent.
  const admin = await signUp(anonymous, "ada.admin@maple.e2e.test", "Ada", "Admin");
  const parent = await signUp(anonymous, "lee.parent@home.e2e.test", "Lee", "Parent");
  const asAdmin = createPtoClient(s.baseUrl, admin.token);
  // A token source may be a function (read before each request, e.g. after a refresh).
  const asParent = createPtoClient(s.baseUrl, () => parent.token);

  const me = expectOk(await asAdmin.GET("/api/v2/me"), 200, "GET /me");
  assert.equal(me.data.user.email, "ada.admin@maple.e2e.test");
  assert.deepEqual(me.data.memberships, []);

  // 2. Create an org: the creator is its admin.
  const created = expectOk(
    await asAdmin.POST("/api/v2/orgs", { body: { name: "Maple Elementary PTO", signup_code: "MAPLE2026" } }),
    201,
    "create org",
  );
  const org = created.data.org;
  assert.equal(org.name, "Maple Elementary PTO");
  assert.equal(org.status, "active");
  assert.equal(created.data.membership.org_id, org.id);
  assert.equal(created.data.membership.role, "admin");
  assert.equal(created.data.membership.status, "active");
  const orgPath = { org_id: org.id };

  const listed = expectOk(await asAdmin.GET("/api/v2/orgs"), 200, "list orgs");
  assert.ok(listed.data.some((o) => o.org.id === org.id), "the new org is listed");

  // 3. Invite the parent (an existing, proven account), who sees and accepts it.
  const invitation = expectOk(
    await asAdmin.POST("/api/v2/orgs/{org_id}/users", {
      params: { path: orgPath },
      body: {
        email: "lee.parent@home.e2e.test",
        first_name: "Lee",
        last_name: "Parent",
        committee: "Book Fair",
        role: "volunteer",
      },
    }),
    201,
    "invite a member",
  );
  assert.equal(invitation.data.email, "lee.parent@home.e2e.test");
  assert.equal(invitation.data.role.rank, "volunteer");
  assert.equal(invitation.data.status, "pending");

  const mine = expectOk(await asParent.GET("/api/v2/me/invitations"), 200, "my invitations");
  const offer = mine.data.find((i) => i.org_id === org.id);
  assert.ok(offer, "the invitation is offered to the parent");
  const answered = expectOk(
    await asParent.POST("/api/v2/me/invitations/{invitation_id}/accept", {
      params: { path: { invitation_id: offer.id } },
    }),
    200,
    "accept the invitation",
  );
  assert.equal(answered.data.org_id, org.id);
  assert.equal(answered.data.status, "accepted");

  const member = expectOk(
    await asAdmin.GET("/api/v2/orgs/{org_id}/users/{user_id}", {
      params: { path: { org_id: org.id, user_id: parent.user.id } },
    }),
    200,
    "get the new member",
  );
  assert.equal(member.data.status, "active");
  assert.equal(member.data.role.rank, "volunteer");
  assert.equal(member.data.committee, "Book Fair");

  // 4. Change a permission: volunteers may not create events by default...
  const check = (key: string) =>
    asAdmin.GET("/api/v2/orgs/{org_id}/permissions/check", {
      params: { path: orgPath, query: { key, user_id: parent.user.id } },
    });
  const before = expectOk(await check("events.create"), 200, "check before");
  assert.equal(before.data.key, "events.create");
  assert.equal(before.data.user_id, parent.user.id);
  assert.equal(before.data.allowed, false);
  assert.equal(before.data.effective.min_role, "committee_lead");

  // ... the admin lowers the minimum role to volunteer (with the matrix's version) ...
  const matrix = expectOk(
    await asAdmin.GET("/api/v2/orgs/{org_id}/permissions", { params: { path: orgPath } }),
    200,
    "permission matrix",
  );
  assert.ok(matrix.data.permissions.length > 0);
  const written = expectOk(
    await asAdmin.PUT("/api/v2/orgs/{org_id}/permissions/settings", {
      params: { path: orgPath },
      body: { version: matrix.data.version, changes: [{ key: "events.create", min_role: "volunteer" }] },
    }),
    200,
    "update permission settings",
  );
  assert.ok(written.data.version > matrix.data.version, "the settings version moves on");

  // ... a stale version is refused (412, spec: no lost updates) ...
  const stale = await asAdmin.PUT("/api/v2/orgs/{org_id}/permissions/settings", {
    params: { path: orgPath },
    body: { version: matrix.data.version, changes: [{ key: "events.edit", min_role: "volunteer" }] },
  });
  expectError(stale, 412, "VERSION_MISMATCH", "a settings write with a stale version");

  // ... and checks now allow it.
  const afterChange = expectOk(await check("events.create"), 200, "check after the settings change");
  assert.equal(afterChange.data.allowed, true);
  assert.equal(afterChange.data.effective.min_role, "volunteer");

  // A grant to one member: budget approval, normally for board members.
  const budgetBefore = expectOk(await check("budget.approve"), 200, "check budget.approve before");
  assert.equal(budgetBefore.data.allowed, false);
  expectOk(
    await asAdmin.POST("/api/v2/orgs/{org_id}/permissions/grants", {
      params: { path: orgPath },
      body: { user_id: parent.user.id, key: "budget.approve", reason: "Treasurer on leave" },
    }),
    201,
    "grant budget.approve",
  );
  const budgetAfter = expectOk(await check("budget.approve"), 200, "check budget.approve after");
  assert.equal(budgetAfter.data.allowed, true);
  // The member sees the same answer for themself.
  const own = expectOk(
    await asParent.GET("/api/v2/orgs/{org_id}/permissions/check", {
      params: { path: orgPath, query: { key: "budget.approve" } },
    }),
    200,
    "the member's own check",
  );
  assert.equal(own.data.allowed, true);
  assert.equal(own.data.user_id, parent.user.id);

  // 5. Search members.
  const found = expectOk(
    await asAdmin.GET("/api/v2/orgs/{org_id}/users/search", {
      params: { path: orgPath, query: { q: "lee" } },
    }),
    200,
    "search members",
  );
  assert.equal(found.data.length, 1, JSON.stringify(found.data));
  assert.equal(found.data[0]?.user_id, parent.user.id);
  assert.equal(found.data[0]?.email, "lee.parent@home.e2e.test");
  const nobody = expectOk(
    await asAdmin.GET("/api/v2/orgs/{org_id}/users/search", {
      params: { path: orgPath, query: { q: "zzz-nobody" } },
    }),
    200,
    "search with no match",
  );
  assert.deepEqual(nobody.data, []);

  // 6. Export members as a background job: start, poll, download.
  const started = await asAdmin.GET("/api/v2/orgs/{org_id}/users/export", {
    params: { path: orgPath, query: { format: "csv", async: true } },
  });
  assert.equal(started.response.status, 202, `export start: ${JSON.stringify(started.error)}`);
  const job = (started.data as Schemas["JobViewEnvelope"]).data;
  assert.equal(job.kind, "member_export");
  assert.ok(["queued", "running", "succeeded"].includes(job.status), job.status);

  const done = await eventually("the export job to end", 30_000, async () => {
    const polled = expectOk(
      await asAdmin.GET("/api/v2/orgs/{org_id}/jobs/{job_id}", {
        params: { path: { org_id: org.id, job_id: job.id } },
      }),
      200,
      "poll the export job",
    );
    return ["succeeded", "failed", "cancelled"].includes(polled.data.status) ? polled.data : undefined;
  });
  assert.equal(done.status, "succeeded", done.error ?? "");
  assert.equal(done.total_rows, 2, "the admin and the parent");
  assert.ok(done.download_url, "a download link once succeeded");

  const download = await asAdmin.GET("/api/v2/orgs/{org_id}/jobs/{job_id}/download", {
    params: { path: { org_id: org.id, job_id: job.id } },
    parseAs: "text",
  });
  assert.equal(download.response.status, 200);
  assert.match(download.response.headers.get("content-type") ?? "", /^text\/csv/);
  const csv = download.data ?? "";
  const rows = csv.trim().split(/\r?\n/);
  assert.equal(rows.length, 3, csv);
  assert.match(rows[0] ?? "", /email/);
  assert.ok(csv.includes("lee.parent@home.e2e.test"), csv);
  assert.ok(csv.includes("ada.admin@maple.e2e.test"), csv);

  // 7. The audit log records what happened, newest first, each event chained.
  const audit = expectOk(
    await asAdmin.GET("/api/v2/orgs/{org_id}/audit-logs", {
      params: { path: orgPath, query: { limit: 100 } },
    }),
    200,
    "audit log",
  );
  const events = audit.data;
  assert.ok(events.length >= 3, JSON.stringify(events.map((e) => e.action)));
  for (const event of events) {
    assert.equal(typeof event.hash, "string");
    assert.ok(!Number.isNaN(Date.parse(event.occurred_at)), event.occurred_at);
  }
  const actions = events.map((e) => e.action);
  for (const expected of [
    "org.create",
    "member.invite",
    "invitation.accept",
    "permission.update",
    "permission.grant",
    "data.export",
  ]) {
    assert.ok(actions.includes(expected), `${expected} in ${JSON.stringify(actions)}`);
  }
  assert.ok(
    events.some((e) => e.action === "permission.update" && e.actor === `user:${admin.user.id}`),
    `the settings change is the admin's: ${JSON.stringify(events.filter((e) => e.action === "permission.update"))}`,
  );
  assert.ok(
    events.some((e) => e.action === "permission.grant" && e.entity_id.includes(parent.user.id)),
    `the grant names the member: ${JSON.stringify(events.filter((e) => e.action === "permission.grant"))}`,
  );
  const filtered = expectOk(
    await asAdmin.GET("/api/v2/orgs/{org_id}/audit-logs", {
      params: { path: orgPath, query: { action: "permission.grant" } },
    }),
    200,
    "audit log filtered by action",
  );
  assert.ok(filtered.data.length >= 1);
  assert.ok(filtered.data.every((e) => e.action === "permission.grant"), JSON.stringify(filtered.data));
  const one = expectOk(
    await asAdmin.GET("/api/v2/orgs/{org_id}/audit-logs/{event_id}", {
      params: { path: { org_id: org.id, event_id: filtered.data[0]?.id ?? "" } },
    }),
    200,
    "one audit event",
  );
  assert.equal(one.data.id, filtered.data[0]?.id);
  assert.equal(one.data.hash, filtered.data[0]?.hash);

  // A volunteer may not read the audit log.
  expectError(
    await asParent.GET("/api/v2/orgs/{org_id}/audit-logs", { params: { path: orgPath } }),
    403,
    "PERMISSION_DENIED",
    "audit log as a volunteer",
  );
}
