"""Returns every record unchanged: the cost of lifting a batch into Python
objects and lowering it back, with no work in between (benches/languages.sh)."""

from weir_sdk import BatchResult, Transform


class Echo(Transform):
    name = "python-echo"
    version = "1.0.0"

    def process(self, records, now_ms):
        return BatchResult(list(records), [])
