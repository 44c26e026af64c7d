"""JSON load of cargo-like records, as in seed 001 (a 1.3 MB file, loaded repeatedly)."""
import json
import random
import sys

random.seed(1)
names = ["Duper", "Elec's0il", "Cosmo", "Starline"]
records = [{"id": 1000000 + i,
            "product": {"name": random.choice(names), "uid": "elec%03dui" % (i % 1000)},
            "quantity": {"value": random.randint(1, 2000), "id": "mt"},
            "dates": {"start": "2200-10-%02dT00:00:00" % (i % 28 + 1),
                      "end": "2200-11-%02dT00:00:00" % (i % 28 + 1)}}
           for i in range(9000)]
text = json.dumps(records)
loops = int(sys.argv[1]) if len(sys.argv) > 1 else 10
for _ in range(loops):
    data = json.loads(text)
print(len(text), len(data))
