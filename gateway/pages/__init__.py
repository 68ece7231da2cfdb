"""The audit officers' web pages under /audit/: server-rendered (Jinja2, htmx), NL Design System styled,
logged in through OpenID Connect. They call the same functions as the audit API (gateway/audit), with the
officer's organisation as the caller, so a page can show nothing the API would not."""
