"""One router per resource. Routers parse and authorise, then call one function that owns the work."""
