"""Many small objects with a __dict__: made, some kept, most dropped."""
import sys


class Lesson:
    def __init__(self, i):
        self.title = "lesson %d" % i
        self.index = i
        self.tags = [i % 7]


loops = int(sys.argv[1]) if len(sys.argv) > 1 else 5
kept = []
for r in range(loops):
    batch = [Lesson(i) for i in range(100000)]
    kept.extend(batch[::10])
print(len(kept))
