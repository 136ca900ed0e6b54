"""{{name}}: a weir transform. Edit `transform`; `pytest` tests it natively,
`weir plugin build .` makes `{{name}}.wasm`."""

import weir_sdk
from weir_sdk import Invalid, Record, Transform


class {{class}}(Transform):
    name = "{{name}}"
    version = "0.1.0"

    def __init__(self, config: dict):
        # Defaults; a key of the plugin's `config` overrides one, an unknown key is refused.
        self.settings = weir_sdk.settings(config, {"field": "message"})

    def transform(self, record: Record) -> Record:
        doc = record.json()
        if not isinstance(doc, dict) or self.settings.field not in doc:
            raise Invalid(f"{self.settings.field} is missing")
        doc[self.settings.field] = str(doc[self.settings.field]).upper()
        return record.with_json(doc)
