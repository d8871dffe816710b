"""The walkthrough's agent session over MCP: the tool calls a model would make, through
`seb mcp` over stdio, with the official Python SDK (PyPI `mcp`). No model.

    python3 scripts/mcp_agent.py <seb> <admission/broker URL> <agent key> <CA> <namespace>
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters

seb, url, key, ca, ns = sys.argv[1:6]
target = {"cluster": "local", "api_version": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "web"}


async def call(c, tool, args):
    print(f"   agent → {tool}({json.dumps(args)})")
    r = await c.call_tool(tool, args)
    text = r.content[0].text if r.content else ""
    print(f"   seb   ← {'ERROR ' if r.is_error else ''}{text[:300]}")
    return r


async def main():
    params = StdioServerParameters(command=seb, args=["mcp", "--agent", "agent-a", "--agent-key", key,
                                                      "--admission", url, "--broker", url, "--ca", ca],
                                   env={"SEB_LOG": "error"})
    async with Client(params) as c:
        tools = (await c.list_tools()).tools
        print(f"   tools: {', '.join(t.name for t in tools)}")
        await call(c, "list_operations", {"platform": "kubernetes"})
        await call(c, "observe", {"platform": "kubernetes", "op": "scale", "target": target, "params": {"replicas": 4}})
        bad = await call(c, "propose", {"platform": "kubernetes", "op": "scale", "target": target, "params": {"replicas": "lots"}})
        assert bad.is_error
        r = await call(c, "apply", {"platform": "kubernetes", "op": "scale", "target": target,
                                    "params": {"replicas": 4}, "rationale": "traffic is back to normal",
                                    "proposal_id": "mcp-scale4"})
        assert not r.is_error and r.structured_content["outcome"] == "applied", r
        again = await call(c, "execute", {"proposal_id": "mcp-scale4"})
        assert again.is_error and again.structured_content["failed_check"] == "replay", again
        await call(c, "history", {"limit": 3})


asyncio.run(main())
