"""Members' tools: MCP servers a server admin configures, reached through `ToolHub` (no Discord, no SQL)."""
