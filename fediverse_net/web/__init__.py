"""HTTP adapters: routes, handlers, templates. Handlers parse, call one service, respond."""
