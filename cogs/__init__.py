"""Discord cogs: they translate interactions into engine calls and engine events into messages."""
