# edgeward-world: filter
"""{{name}}: an Edgeward filter. Answers 403 for paths under `deny` (default
`/admin`) and tags every response with `x-filtered-by`."""

from edgeward_sdk import PASS, Config, ConfigError, Continue, DirectResponse, Filter, HeaderEdit, Respond, export_filter


class Plugin(Filter):
    def __init__(self, config: Config) -> None:
        config.allow_only(["deny"])
        self.deny = config.get_or("deny", "/admin")
        if not self.deny.startswith("/"):
            raise ConfigError(f"config `deny`: `{self.deny}` must start with /")

    def on_request(self, req):
        if req.path().startswith(self.deny):
            return Respond(DirectResponse(403).text("forbidden\n"))
        return PASS

    def on_response(self, req, resp):
        return Continue([HeaderEdit.set("x-filtered-by", "{{name}}")])


WitWorld = export_filter(Plugin)
