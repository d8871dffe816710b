// An agent session driving `seb mcp` over stdio with the official TypeScript MCP SDK
// (npm `@modelcontextprotocol/sdk`, pinned by the caller, installed next to this file).
//
//   node ts_session.mjs <scenario.json>
//
// Checks each step (exit 1 with the step on failure) and prints one JSON line per step.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const check = (cond, step, what, r) => {
  if (!cond) {
    console.error(`FAILED ${step}: ${what}\n${JSON.stringify(r)}`);
    process.exit(1);
  }
};
const log = (step, r) => console.log(JSON.stringify({ step, ...r }).slice(0, 2000));

const transport = new StdioClientTransport({
  command: cfg.seb,
  args: ["mcp", ...cfg.mcp_args],
  env: cfg.env,
  stderr: "inherit",
});
const client = new Client({ name: "seb-ts-test", version: "1.0.0" });
await client.connect(transport);

const { tools } = await client.listTools();
log("list_tools", { tools: tools.map((t) => t.name) });
check(tools.length === 7, "list_tools", "seven tools", tools);
const execute = tools.find((t) => t.name === "execute");
check(execute.annotations.destructiveHint === true, "list_tools", "execute destructive", execute);
const observe = tools.find((t) => t.name === "observe");
check(observe.annotations.readOnlyHint === true, "list_tools", "observe read-only", observe);

const target = { cluster: "test", api_version: "apps/v1", kind: "Deployment", namespace: cfg.ns, name: "web" };
let r = await client.callTool({ name: "list_operations", arguments: { platform: "aws" } });
log("list_operations", r);
check(!r.isError && r.structuredContent.platforms[0].operations.length === 11, "list_operations", "11 AWS ops", r);

r = await client.callTool({ name: "observe", arguments: { platform: "kubernetes", op: "scale", target, params: { replicas: 2 } } });
log("observe", r);
check(!r.isError && r.structuredContent.projection[""].metadata.name === "web", "observe", "the live object", r);

r = await client.callTool({ name: "propose", arguments: { platform: "kubernetes", op: "scale", target, params: { replicas: "many" } } });
log("bad_input", r);
check(r.isError === true && r.structuredContent.sent === false, "bad_input", "tool error, nothing sent", r);

r = await client.callTool({ name: "apply", arguments: { platform: "kubernetes", op: "scale", target, params: { replicas: 5 }, proposal_id: cfg.ts_proposal, wait_s: 1 } });
log("apply", r);
check(!r.isError && r.structuredContent.status === "pending", "apply", "pending: returned after the bound, not applied", r);

r = await client.callTool({ name: "history", arguments: {} });
log("history", r);
check(!r.isError && r.structuredContent.proposals.some((p) => p.proposal_id === cfg.ts_proposal), "history", "the proposal", r);

await client.close();
console.log("SESSION OK");
