"""The council engine: plain asyncio, no Discord."""
