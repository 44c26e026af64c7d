"""A small program with the memory problems memlens is built for.

It loads a JSON document of cargo records (as in a real talk about Python
memory: a 1.3 MB file that takes several times its size once loaded), turns
them into objects, and serves "requests" through a cache that never evicts.

    python -m memlens run examples/cargo.py      # record it
    python -m memlens summary memlens-cargo-*.mlens
    python -m memlens types   memlens-cargo-*.mlens
    python -m memlens leaks   memlens-cargo-*.mlens
"""
import json
import random


class Shipment:
    def __init__(self, record):
        self.id = record["id"]
        self.product = record["product"]["name"]
        self.quantity = record["quantity"]["value"]
        self.window = (record["dates"]["start"], record["dates"]["end"])


def make_document(n=9000):
    rnd = random.Random(1)
    names = ["Duper", "Elec's0il", "Cosmo", "Starline"]
    return json.dumps([
        {"id": 1000000 + i,
         "product": {"name": rnd.choice(names), "uid": "elec%03dui" % (i % 1000)},
         "quantity": {"value": rnd.randint(1, 2000), "id": "mt"},
         "dates": {"start": "2200-10-%02dT00:00:00" % (i % 28 + 1),
                   "end": "2200-11-%02dT00:00:00" % (i % 28 + 1)}}
        for i in range(n)])


_cache = {}


def handle_request(shipments, request_id):
    # the leak: every request caches its report under a new key
    report = ["%d:%s:%d" % (s.id, s.product, s.quantity) for s in shipments[request_id::50]]
    _cache[request_id] = report
    return len(report)


def main():
    text = make_document()
    records = json.loads(text)
    shipments = [Shipment(r) for r in records]
    del records
    served = sum(handle_request(shipments, i) for i in range(300))
    print("document %d bytes, %d shipments, %d report lines served" % (len(text), len(shipments), served))


if __name__ == "__main__":
    main()
