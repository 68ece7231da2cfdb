"""The heart: the send transaction, the read path, acknowledgements, lists and retention."""
