"""Steward as the governed MCP gateway for agents built elsewhere (``steward gateway AGENT``)."""
