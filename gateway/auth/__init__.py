"""Caller authentication: private_key_jwt-style tokens signed with the organisation's own key."""
