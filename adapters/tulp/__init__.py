"""TULP adapter: reads a TULP export (DJI's case system) and sends the gateway's contracts for it.

An outside party: it talks to the gateway over HTTP only (``brb_client``, adapters/brb-client), imports ``contracts`` for
local validation and nothing from ``gateway``. See FORMAT.md for the export format."""
